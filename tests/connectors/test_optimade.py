"""The OPTIMADE connector: the compiler alone, then the reference server on loopback.

Rows the provider returns are compared with a Kleene-logic evaluation in pandas of the same
filter over the same source rows (``expt_gap.csv``), as every other store is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from optimade_data.provider import PREFIX, Provider, free_port, reference_server
from test_properties import FILTERS, reference

from connectors.base import open_store
from connectors.datasets import ColumnType
from connectors.errors import ConnectorError, FilterError, QueryError, StoreError, TableError
from connectors.filterparser import parse
from connectors.filters import And, Compare, CompareOp, Filter, Known, Match, MatchOp, Not, Or
from connectors.netguard import NetPolicy
from connectors.optimade import OptimadeConnector, compile_optimade, licence_id, provider_info
from connectors.query import Mask, MaskKind, Query
from connectors.sqlcompile import REDACTED

# The reference server listens on loopback: the node's network policy names it.
LOOPBACK = NetPolicy.from_entries(["127.0.0.1"])

GAP = f"_{PREFIX}_band_gap"
METALLIC = f"_{PREFIX}_metallic"

# ---- the compiler, without a provider -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a > 1", "a > 1"),
        ("NOT a > 1", "a <= 1"),
        ("NOT a = 1.5", "a != 1.5"),
        ('NOT (a = 1 AND b = "x")', 'a != 1 OR b != "x"'),
        ("NOT (a < 1 OR b >= 2)", "a >= 1 AND b < 2"),
        ("NOT (NOT a != 1)", "a != 1"),
        ('NOT a CONTAINS "x"', 'a IS KNOWN AND NOT a CONTAINS "x"'),
        ('NOT a STARTS "x" OR b = 2', '(a IS KNOWN AND NOT a STARTS "x") OR b = 2'),
        ("NOT a IS KNOWN", "a IS UNKNOWN"),
        ('a IS UNKNOWN OR b ENDS "z"', 'a IS UNKNOWN OR b ENDS "z"'),
        ("(a = 1 OR b = 2) AND c = 3", "(a = 1 OR b = 2) AND c = 3"),
        ("a = 1 OR (b = 2 AND c = 3)", "a = 1 OR (b = 2 AND c = 3)"),
        ("3 < a", "a > 3"),
        ("flag = TRUE", "flag = TRUE"),
    ],
)
def test_compiles_to_optimade_text(text: str, expected: str) -> None:
    """Negations are pushed to the comparisons; grouping survives in parentheses."""
    assert compile_optimade(parse(text)) == expected


def test_strings_are_quoted_and_escaped_per_the_grammar() -> None:
    """Quotes and backslashes are escaped, and the text parses back to the same value."""
    node = Compare("s", CompareOp.EQ, 'say "hi" \\ then\nbreak')
    text = compile_optimade(node)
    assert text == 's = "say \\"hi\\" \\\\ then\nbreak"'
    assert parse(text) == node


def test_timestamps_become_rfc3339_utc() -> None:
    """ISO text on a timestamp column is sent in UTC with a Z; naive text is taken as UTC."""
    stamps = frozenset({"t"})
    assert (
        compile_optimade(parse('t > "2020-01-02T03:04:05+09:00"'), stamps)
        == 't > "2020-01-01T18:04:05Z"'
    )
    assert compile_optimade(parse('t <= "2020-03-01"'), stamps) == 't <= "2020-03-01T00:00:00Z"'
    assert compile_optimade(parse('u = "2020-03-01"'), stamps) == 'u = "2020-03-01"'
    with pytest.raises(FilterError, match="not an ISO 8601"):
        compile_optimade(Compare("t", CompareOp.GT, "yesterday"), stamps)


@pytest.mark.parametrize(
    "node",
    [
        Compare("Band_gap", CompareOp.EQ, 1),
        Compare("f", CompareOp.EQ, float("nan")),
        Known("x.y"),
    ],
)
def test_refuses_what_optimade_cannot_say(node: Filter) -> None:
    """Upper-case or dotted names and non-finite numbers cannot be written in OPTIMADE."""
    with pytest.raises(FilterError):
        compile_optimade(node)


@pytest.mark.parametrize(
    ("given_url", "api"),
    [
        ("http://h.example", "http://h.example/v1"),
        ("https://h.example/optimade/", "https://h.example/optimade/v1"),
        ("https://h.example/optimade/v1.2", "https://h.example/optimade/v1.2"),
    ],
)
def test_base_url_gets_its_major_version(given_url: str, api: str) -> None:
    """An unversioned base URL is read at /v1; a versioned one is kept."""
    with OptimadeConnector(given_url) as connector:
        assert connector.base_url == api


@pytest.mark.parametrize(
    ("given_url", "page_limit"),
    [("ftp://h.example", 10), ("not a url", 10), ("http://h.example", 0)],
)
def test_bad_settings_are_refused(given_url: str, page_limit: int) -> None:
    """Only http(s) providers, with a positive page size."""
    with pytest.raises(ConnectorError):
        OptimadeConnector(given_url, page_limit=page_limit)


def test_empty_groups_are_always_and_never() -> None:
    """An empty AND selects every entry, an empty OR none (every entry has an id)."""
    assert compile_optimade(And(())) == "id IS KNOWN"
    assert compile_optimade(Not(Or(()))) == "id IS KNOWN"
    assert compile_optimade(Or(())) == "id IS UNKNOWN"


def _two_valued(node: Filter, frame: pd.DataFrame) -> pd.Series:
    """OPTIMADE's own semantics: a comparison on an unknown value is false, NOT is plain not."""
    if isinstance(node, And | Or):
        parts = [_two_valued(i, frame) for i in node.items]
        out = parts[0]
        for part in parts[1:]:
            out = (out & part) if isinstance(node, And) else (out | part)
        return out
    if isinstance(node, Not):
        return ~_two_valued(node.item, frame)
    return reference(node, frame).fillna(False).astype(bool)


@settings(max_examples=60, deadline=None)
@given(node=FILTERS)
def test_two_valued_evaluation_of_the_text_is_kleene_truth(node: Filter) -> None:
    """Where OPTIMADE's two-valued logic holds for the text, Kleene logic holds for the tree."""
    from connector_samples import sample_frame

    frame = sample_frame()
    sent = parse(compile_optimade(node))
    kleene = reference(node, frame).fillna(False).astype(bool)
    assert _two_valued(sent, frame).tolist() == kleene.tolist()


# ---- licences -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "available", "expected"),
    [
        ("https://creativecommons.org/licenses/by/4.0/", ("CC-BY-4.0",), "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode", (), "CC-BY-NC-SA-4.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/", (), "CC0-1.0"),
        ("https://spdx.org/licenses/ODbL-1.0.html", (), "ODbL-1.0"),
        ("https://example.org/terms", (), None),
        (None, (), None),
    ],
)
def test_licence_ids(url: str | None, available: tuple[str, ...], expected: str | None) -> None:
    """The SPDX id comes from available_licenses, else from a recognised licence URL."""
    assert licence_id(url, available) == expected


def test_provider_info_reads_an_info_document() -> None:
    """An /info document as Materials Project serves it gives its SPDX licence."""
    document = {
        "data": {
            "type": "info",
            "id": "/",
            "attributes": {
                "api_version": "1.1.0",
                "available_endpoints": ["info", "links", "structures"],
                "license": {"href": "https://creativecommons.org/licenses/by/4.0/"},
                "available_licenses": ["CC-BY-4.0"],
            },
        },
        "meta": {"provider": {"name": "Materials Project", "prefix": "mp"}},
    }
    info = provider_info(document, "https://optimade.materialsproject.org/v1")
    assert info.entry_types == ("structures",)
    assert info.licence == "CC-BY-4.0"
    assert info.provider_prefix == "mp"
    with pytest.raises(StoreError, match=r"without data\.attributes"):
        provider_info({"data": []}, "https://x.invalid/v1")


# ---- the reference server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Provider]:
    """The reference server serving expt_gap.csv, once for this module."""
    workdir = tmp_path_factory.mktemp("optimade")
    with reference_server(data_dir / "expt_gap.csv", workdir) as running:
        yield running


class Recorder:
    """The query strings of every request a connector sends, through a real httpx client."""

    def __init__(self) -> None:
        self.requests: list[httpx.URL] = []
        self.client = httpx.Client(timeout=30, event_hooks={"request": [self._record]})

    def _record(self, request: httpx.Request) -> None:
        self.requests.append(request.url)

    def entries(self) -> list[httpx.URL]:
        """Requests for entries (not /info)."""
        return [u for u in self.requests if "/info" not in u.path]


@pytest.fixture
def recorded(provider: Provider) -> Iterator[tuple[OptimadeConnector, Recorder]]:
    """A connector with page_limit 20 whose requests are recorded."""
    recorder = Recorder()
    connector = OptimadeConnector(provider.url, page_limit=20, client=recorder.client)
    yield connector, recorder
    recorder.client.close()


@pytest.fixture(scope="module")
def store(provider: Provider) -> Iterator[OptimadeConnector]:
    """A connector on the reference server, shared by the module."""
    with OptimadeConnector(provider.url, page_limit=200, timeout=30, network=LOOPBACK) as connector:
        yield connector


def _table(connector: OptimadeConnector, query: Query) -> pa.Table:
    batches = list(connector.batches(query))
    return pa.Table.from_batches(batches, schema=connector.schema(query))


def test_schema_comes_from_info(store: OptimadeConnector) -> None:
    """Types follow /info/structures; lists are JSON text; provider properties are columns."""
    columns = store.columns("structures")
    assert columns["id"] is ColumnType.STRING
    assert columns["nelements"] is ColumnType.INTEGER
    assert columns["chemical_formula_reduced"] is ColumnType.STRING
    assert columns["last_modified"] is ColumnType.TIMESTAMP
    assert columns[GAP] is ColumnType.FLOAT
    assert columns[METALLIC] is ColumnType.BOOLEAN
    assert columns["elements"] is ColumnType.STRING
    assert store.arrow_schema("structures").field("last_modified").type == pa.timestamp(
        "us", tz="UTC"
    )
    props = store.properties("structures")
    assert props[GAP].unit == "eV"
    assert props["elements"].is_json and not props["elements"].sortable


def test_licence_and_info(store: OptimadeConnector, provider: Provider) -> None:
    """The licence link of /info reaches the catalog; entry types are the tables."""
    assert store.licence() == provider.licence_url
    info = store.info()
    assert info.provider_prefix == PREFIX
    assert "structures" in store.tables()
    assert info.api_version is not None and info.api_version.startswith("1.")


def test_unknown_entry_type_is_a_table_error(store: OptimadeConnector) -> None:
    """A table that is not one of the provider's entry types is refused."""
    with pytest.raises(TableError, match="no entry type 'materials'"):
        store.columns("materials")
    with pytest.raises(TableError):
        store.columns("../info")


def test_projection_is_pushed_down(
    recorded: tuple[OptimadeConnector, Recorder], provider: Provider
) -> None:
    """Only the requested columns are asked for, and come back in the query's order."""
    connector, recorder = recorded
    query = Query("structures", (GAP, "chemical_formula_descriptive", "id", "elements"), limit=60)
    table = _table(connector, query)
    assert table.column_names == [GAP, "chemical_formula_descriptive", "id", "elements"]
    first = recorder.entries()[0]
    assert first.params["response_fields"] == f"{GAP},chemical_formula_descriptive,id,elements"
    source = provider.frame.set_index("id")
    for row in table.to_pylist():
        want = source.loc[row["id"]]
        assert row["chemical_formula_descriptive"] == want["chemical_formula_descriptive"]
        assert row["elements"] == want["elements"]
        assert (row[GAP] is None) == pd.isna(want[GAP])
    assert any(row[GAP] is None for row in table.to_pylist())  # row 7 and 57 have no gap


FILTER_TEXTS = [
    f"{GAP} > 2",
    f"{GAP} <= 0.5 AND nelements = 2",
    f"NOT {GAP} > 1",
    f"NOT ({GAP} > 1 OR nelements >= 3)",
    f"{GAP} IS UNKNOWN",
    f"NOT {GAP} IS KNOWN OR nsites < 3",
    'chemical_formula_descriptive CONTAINS "Au"',
    'chemical_formula_reduced STARTS "Ag"',
    'chemical_formula_descriptive ENDS "O3"',
    f'NOT chemical_formula_descriptive CONTAINS "O" AND {GAP} > 3',
    'chemical_formula_reduced = "AgAu2S2"',
    'chemical_formula_reduced != "AgAu2S2" AND nelements = 3 AND nsites < 6',
    'id < "mg-00100"',
    'last_modified >= "2020-02-01T00:00:00" AND last_modified < "2020-02-02"',
    "5 < nsites AND nelements = 3",
    f"NOT (NOT {GAP} < 0.1 AND nelements != 2)",
]


@pytest.mark.parametrize("text", FILTER_TEXTS)
def test_filters_match_the_reference(
    text: str, store: OptimadeConnector, provider: Provider
) -> None:
    """Each construct, pushed down, selects the rows pandas selects with Kleene logic."""
    node = parse(text)
    frame = provider.frame
    if "last_modified" in text:
        # ISO text without a zone compares as the instants do (all UTC, fixed width).
        stamps = frame["last_modified"].map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"))
        frame = frame.assign(last_modified=stamps.astype("string"))
    want = sorted(frame.loc[reference(node, frame).fillna(False).astype(bool), "id"])
    assert want, "every case selects some rows"
    query = Query("structures", ("id",), node)
    got = sorted(_table(store, query).column("id").to_pylist())
    assert got == want
    assert store.count(query) == len(want)


def test_the_filter_is_compiled_into_the_request(
    recorded: tuple[OptimadeConnector, Recorder],
) -> None:
    """The provider receives the compiled filter, not the neutral text."""
    connector, recorder = recorded
    query = Query("structures", ("id",), parse(f"NOT {GAP} > 1"), limit=5)
    assert len(_table(connector, query)) == 5
    assert recorder.entries()[0].params["filter"] == f"{GAP} <= 1"


def test_paging_follows_next_links_one_batch_per_page(
    recorded: tuple[OptimadeConnector, Recorder], provider: Provider
) -> None:
    """A 20-row page limit over ~50 rows reads every page, each page one batch."""
    connector, recorder = recorded
    node = parse(f"{GAP} > 4")
    frame = provider.frame
    want = sorted(frame.loc[reference(node, frame).fillna(False).astype(bool), "id"])
    assert len(want) > 40
    batches = list(connector.batches(Query("structures", ("id", GAP), node)))
    assert [b.num_rows for b in batches[:-1]] == [20] * (len(batches) - 1)
    assert sorted(i for b in batches for i in b.column("id").to_pylist()) == want
    assert len(recorder.entries()) == -(-len(want) // 20)
    assert all(u.params.get("page_offset") for u in recorder.entries()[1:])


@pytest.mark.parametrize(("offset", "limit"), [(0, 10), (130, 70), (1140, 50), (2000, 5)])
def test_limit_and_offset_by_paging(
    offset: int,
    limit: int,
    recorded: tuple[OptimadeConnector, Recorder],
    provider: Provider,
) -> None:
    """Limit and offset select the same rows as the reference, without extra pages."""
    connector, recorder = recorded
    query = Query("structures", ("id",), order_by=(("id", False),), limit=limit, offset=offset)
    want = sorted(provider.frame["id"])[offset : offset + limit]
    assert _table(connector, query).column("id").to_pylist() == want
    assert connector.count(query) == len(want)
    pages = [u for u in recorder.entries() if u.params.get("response_fields") == "id"]
    reads = [u for u in pages if u.params.get("page_limit") != "1"]  # not count()
    assert len(reads) == max(1, -(-len(want) // 20))
    assert reads[0].params.get("sort") == "id"


def test_order_puts_unknown_values_last(
    recorded: tuple[OptimadeConnector, Recorder], provider: Provider
) -> None:
    """Ordered by band gap, rows without one come last, across the page where they start."""
    connector, _ = recorded
    node = parse("nelements = 2")
    frame = provider.frame.loc[reference(node, provider.frame).fillna(False).astype(bool)]
    ordered = frame.sort_values([GAP, "id"], ascending=[False, True], na_position="last")
    known = int(ordered[GAP].notna().sum())
    assert 0 < known < len(ordered)
    for offset, limit in [(known - 5, 10), (known + 2, 3), (0, None)]:
        query = Query(
            "structures", ("id", GAP), node, order_by=((GAP, True),), limit=limit, offset=offset
        )
        stop = None if limit is None else offset + limit
        want = ordered["id"].tolist()[offset:stop]
        assert _table(connector, query).column("id").to_pylist() == want, (offset, limit)


def test_masks(store: OptimadeConnector) -> None:
    """NULL and REDACT masks are not read from the provider; HASH hashes the real value."""
    query = Query(
        "structures",
        ("id", "chemical_formula_reduced", GAP, "nsites"),
        masks={
            "chemical_formula_reduced": Mask(MaskKind.HASH, b"pepper" * 4),
            GAP: Mask(MaskKind.REDACT),
            "nsites": Mask(MaskKind.NULL),
        },
        order_by=(("id", False),),
        limit=3,
    )
    rows = _table(store, query).to_pylist()
    assert (
        rows[0]["chemical_formula_reduced"]
        == hmac.new(b"pepper" * 4, b"AgAu2S2", hashlib.sha256).hexdigest()
    )
    assert [r[GAP] for r in rows] == [REDACTED] * 3
    assert [r["nsites"] for r in rows] == [None] * 3
    assert store.schema(query).field("nsites").type == pa.int64()


def test_list_columns_cannot_be_filtered_or_sorted(store: OptimadeConnector) -> None:
    """JSON-text columns refuse filters and ordering instead of comparing JSON text."""
    with pytest.raises(FilterError, match="holds a list"):
        list(store.batches(Query("structures", ("id",), parse('elements = "Ag"'))))
    with pytest.raises(QueryError, match="cannot sort on 'elements'"):
        list(store.batches(Query("structures", ("id",), order_by=(("elements", False),))))


def test_a_filter_the_provider_rejects(store: OptimadeConnector) -> None:
    """The reference server cannot take boolean literals: FilterError with its reason."""
    query = Query("structures", ("id",), parse(f"{METALLIC} = TRUE"))
    with pytest.raises(FilterError, match="refused the filter") as caught:
        list(store.batches(query))
    assert "NotImplementedError" in str(caught.value)


def test_an_optimade_error_document_is_a_store_error(provider: Provider) -> None:
    """A page size above the provider's maximum is answered with an error document."""
    with (
        OptimadeConnector(provider.url, page_limit=10_000, network=LOOPBACK) as connector,
        pytest.raises(StoreError, match=r"answered 403: .*page_limit"),
    ):
        list(connector.batches(Query("structures", ("id",))))


def test_an_unreachable_provider_is_a_store_error() -> None:
    """Nothing listens on the port: StoreError naming the provider."""
    url = f"http://127.0.0.1:{free_port()}"
    with OptimadeConnector(url, timeout=5, network=LOOPBACK) as connector:
        with pytest.raises(StoreError, match=re.escape(f"cannot reach OPTIMADE provider {url}/v1")):
            connector.licence()
        with pytest.raises(StoreError):
            list(connector.batches(Query("structures", ("id",))))


def test_a_non_json_answer_is_a_store_error(provider: Provider) -> None:
    """A web page where /info should be is refused."""
    with (
        OptimadeConnector(f"{provider.pages_url}/licences", network=LOOPBACK) as connector,
        pytest.raises(StoreError, match="text/plain, not JSON"),
    ):
        connector.info()


def test_next_links_stay_on_the_provider(provider: Provider) -> None:
    """A next link to another host is refused rather than followed."""
    with (
        OptimadeConnector(f"{provider.pages_url}/hostile", network=LOOPBACK) as connector,
        pytest.raises(StoreError, match=re.escape("next link to http://169.254.169.254")),
    ):
        list(connector.batches(Query("structures", ("id",))))


def test_open_store_and_dataset_validation(provider: Provider) -> None:
    """The gateway opens an 'optimade' store by URL and checks a dataset against it."""
    from connectors.datasets import Column, Dataset, PSPPRole, Store
    from connectors.errors import SchemaMismatchError

    opened = open_store("optimade", provider.url, network=LOOPBACK)
    assert isinstance(opened, OptimadeConnector)
    connector = opened
    columns = (
        Column(name="id", type=ColumnType.STRING, pspp=PSPPRole.IDENTIFIER),
        Column(name=GAP, type=ColumnType.FLOAT, unit="eV", pspp=PSPPRole.PROPERTY),
    )
    dataset = Dataset(
        institution="public",
        name="expt-gap",
        title="Experimental band gaps",
        license="CC-BY-4.0",
        location=Store(store="optimade", table="structures"),
        columns=columns,
    )
    with connector:
        connector.validate(dataset)
        wrong = dataset.model_copy(
            update={
                "columns": (
                    *columns,
                    Column(name="nsites", type=ColumnType.STRING, pspp=PSPPRole.STRUCTURE),
                )
            }
        )
        with pytest.raises(SchemaMismatchError, match="'nsites' is declared string"):
            connector.validate(wrong)


def test_a_match_the_reference_server_reads_as_a_regex(store: OptimadeConnector) -> None:
    """Documented deviation: the reference server fails on CONTAINS with regex characters."""
    query = Query(
        "structures", ("id",), Match("chemical_formula_descriptive", MatchOp.CONTAINS, "(Au")
    )
    with pytest.raises(StoreError, match="answered 500"):
        list(store.batches(query))
