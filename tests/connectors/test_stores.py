"""Every connector on real stores: projection, masks, order, paging, empty results, count."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from connector_samples import HOSTILE, sample_arrow, sample_frame

from connectors.base import Connector, hash_column, open_store
from connectors.datasets import Column, ColumnType, Dataset, PSPPRole, Store
from connectors.errors import (
    ConnectorError,
    FilterTypeError,
    QueryError,
    SchemaMismatchError,
    TableError,
    UnknownColumnError,
)
from connectors.filterparser import parse
from connectors.query import Mask, MaskKind, Query

SCHEMA = pa.schema([("id", pa.int64()), ("i", pa.int64()), ("f", pa.float64()), ("s", pa.string())])


def read(connector: Connector, query: Query, batch_rows: int = 65536) -> pa.Table:
    """All batches of a query as one table, checking each batch's schema on the way."""
    schema = connector.schema(query)
    batches = list(connector.batches(query, batch_rows=batch_rows))
    assert batches, "even an empty result yields one batch"
    for batch in batches:
        assert batch.schema.equals(schema)
        assert batch.num_rows <= batch_rows
    return pa.Table.from_batches(batches, schema=schema)


def test_schema_and_columns(store: tuple[Connector, str]) -> None:
    """Stored types map to the canonical Arrow and logical types."""
    connector, table = store
    assert connector.arrow_schema(table).equals(SCHEMA)
    assert connector.columns(table) == {
        "id": ColumnType.INTEGER,
        "i": ColumnType.INTEGER,
        "f": ColumnType.FLOAT,
        "s": ColumnType.STRING,
    }


def test_full_read_matches_the_reference(store: tuple[Connector, str]) -> None:
    """Every row and value comes back, hostile strings and NULLs included, in small batches."""
    connector, table = store
    got = read(connector, Query(table, ("s", "f", "i", "id"), order_by=(("id", False),)), 17)
    want = sample_arrow().select(["s", "f", "i", "id"])
    assert got.to_pylist() == want.to_pylist()


def test_masks(store: tuple[Connector, str]) -> None:
    """NULL keeps the type with no values, REDACT is a constant string, HASH a salted digest."""
    connector, table = store
    key = b"k" * 32
    masks = {"i": Mask(MaskKind.NULL), "f": Mask(MaskKind.REDACT), "s": Mask(MaskKind.HASH, key)}
    got = read(
        connector, Query(table, ("id", "i", "f", "s"), masks=masks, order_by=(("id", False),))
    )
    assert got.schema.field("i").type == pa.int64() and got.column("i").null_count == got.num_rows
    assert set(got.column("f").to_pylist()) == {"[redacted]"}
    frame = sample_frame()
    for value, digest in zip(frame["s"], got.column("s").to_pylist(), strict=True):
        if value is pd_na():
            assert digest is None
        else:
            assert digest == hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def pd_na() -> object:
    """pandas' missing-value marker."""
    import pandas as pd

    return pd.NA


def test_order_limit_offset(store: tuple[Connector, str]) -> None:
    """Order is by code point with NULLs last; offset and limit page the ordered rows."""
    connector, table = store
    query = Query(table, ("s", "id"), order_by=(("s", True), ("id", False)), limit=7, offset=3)
    got = read(connector, query).to_pylist()
    frame = sample_frame()
    rows = sorted(
        zip(frame["s"], frame["id"], strict=True),
        key=lambda r: (r[0] is pd_na(), "" if r[0] is pd_na() else r[0], -r[1]),
    )
    nonnull = [r for r in rows if r[0] is not pd_na()]
    nonnull.sort(key=lambda r: r[1])
    nonnull.sort(key=lambda r: r[0], reverse=True)
    expected = [{"s": s, "id": int(i)} for s, i in nonnull][3:10]
    assert got == expected


def test_nulls_last_ascending(store: tuple[Connector, str]) -> None:
    """Ascending order also puts NULLs after every value."""
    connector, table = store
    got = read(connector, Query(table, ("i",), order_by=(("i", False),))).column("i").to_pylist()
    assert got[-1] is None and got[0] == -4 and None not in got[: -sum(v is None for v in got)]


def test_empty_result_keeps_the_schema(store: tuple[Connector, str]) -> None:
    """A filter that matches nothing yields one empty batch with the output schema."""
    connector, table = store
    query = Query(
        table, ("s", "f"), filter=parse("f > 1e300"), masks={"s": Mask(MaskKind.HASH, b"k" * 16)}
    )
    batches = list(connector.batches(query))
    assert [b.num_rows for b in batches] == [0]
    assert batches[0].schema == pa.schema([("s", pa.string()), ("f", pa.float64())])


def test_count(store: tuple[Connector, str]) -> None:
    """count agrees with the rows read, with and without paging."""
    connector, table = store
    query = Query(table, ("id",), filter=parse('i > 0 OR s CONTAINS "%"'))
    assert connector.count(query) == read(connector, query).num_rows > 0
    paged = Query(table, ("id",), filter=query.filter, limit=5, offset=2)
    assert connector.count(paged) == read(connector, paged).num_rows == 5
    assert connector.count(Query(table, ("id",), offset=10_000)) == 0


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (Query("T", ("nope",)), QueryError),
        (Query("T", ("id",), order_by=(("nope", False),)), QueryError),
        (Query("T", ("id",), limit=-1), QueryError),
        (Query("T", ("id",), offset=-1), QueryError),
        (Query("T", ("id", "id")), QueryError),
        (Query("T", ("id",), filter=parse("ii > 1")), UnknownColumnError),
        (Query("T", ("id",), filter=parse('i > "x"')), FilterTypeError),
    ],
)
def test_bad_queries(store: tuple[Connector, str], query: Query, error: type[Exception]) -> None:
    """The base refuses malformed queries before the store sees them."""
    connector, table = store
    bad = Query(
        table, query.columns, query.filter, query.masks, query.order_by, query.limit, query.offset
    )
    with pytest.raises(error):
        list(connector.batches(bad))


@pytest.mark.parametrize("name", ["missing", "samples; DROP TABLE samples", "../samples", ""])
def test_bad_table_names(store: tuple[Connector, str], name: str) -> None:
    """Unknown, malformed or escaping table names raise TableError."""
    connector, _ = store
    with pytest.raises(TableError):
        connector.columns(name)


def dataset(table: str, columns: list[tuple[str, ColumnType]]) -> Dataset:
    """A dataset over the sample table."""
    return Dataset(
        institution="lab",
        name="samples",
        title="Samples",
        license="CC-BY-4.0",
        location=Store(store="s", table=table),
        columns=tuple(Column(name=n, type=t, pspp=PSPPRole.PROPERTY) for n, t in columns),
    )


def test_validate(store: tuple[Connector, str]) -> None:
    """A matching dataset passes; every mismatch is listed."""
    connector, table = store
    connector.validate(dataset(table, [("id", ColumnType.INTEGER), ("i", ColumnType.FLOAT)]))
    bad = dataset(table, [("id", ColumnType.STRING), ("ghost", ColumnType.FLOAT)])
    with pytest.raises(SchemaMismatchError) as caught:
        connector.validate(bad)
    assert len(caught.value.problems) == 2
    assert "ghost" in str(caught.value) and "declared string" in str(caught.value)


def test_csv_and_partitioned_folders(files_root: Path) -> None:
    """CSV files and folders of Parquet files read like single Parquet files."""
    connector = open_store("files", files_root.name, files_root.parent)
    query = Query("samples.csv", ("id", "f"), filter=parse("f >= 3"), order_by=(("id", False),))
    want = [r for r in sample_arrow().select(["id", "f"]).to_pylist() if (r["f"] or 0) >= 3]
    assert read(connector, query).to_pylist() == want
    parts = read(connector, Query("parts", ("id",), filter=parse('s ENDS "c"')))
    assert sorted(parts.column("id").to_pylist()) == [
        r["id"] for r in sample_arrow().to_pylist() if r["s"] is not None and r["s"].endswith("c")
    ]


def test_sqlite_all_null_first_batch_keeps_declared_types(tmp_path: Path) -> None:
    """A float/text column that is NULL throughout the first batch still reads (ADBC typing)."""
    url = f"sqlite:///{tmp_path / 'sparse.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sparse (id INTEGER, f REAL, s TEXT, i INTEGER)"))
        rows = [{"id": n, "f": None, "s": None, "i": None} for n in range(50)]
        rows += [{"id": 50, "f": 1.5, "s": "x", "i": 2}, {"id": 51, "f": 2, "s": "y", "i": None}]
        conn.execute(sa.text("INSERT INTO sparse VALUES (:id, :f, :s, :i)"), rows)
    engine.dispose()
    with open_store("sql", url) as connector:
        got = read(connector, Query("sparse", ("id", "f", "s", "i")), batch_rows=10)
    assert got.schema.field("f").type == pa.float64()
    assert got.to_pylist()[-2:] == [
        {"id": 50, "f": 1.5, "s": "x", "i": 2},
        {"id": 51, "f": 2.0, "s": "y", "i": None},
    ]


def test_hash_column_hashes_each_value_once_and_keeps_nulls() -> None:
    """Equal values give equal digests, keys separate them, nulls stay null; no key, no hash."""
    out = hash_column(pa.array([1, None, 1, 2]), b"a" * 16).to_pylist()
    assert out[0] == out[2] != out[3] and out[1] is None
    assert hash_column(pa.array([1]), b"b" * 16).to_pylist()[0] != out[0]
    with pytest.raises(QueryError):
        hash_column(pa.array([1]), b"")
    for key in (b"k" * 16, b"k" * 64, b"a much longer shared key " * 8):
        want = [hmac.new(key, t.encode(), hashlib.sha256).hexdigest() for t in ("x", "")]
        assert hash_column(pa.array(["x", ""]), key).to_pylist() == want


def test_open_store_refuses_unknown_kinds() -> None:
    """Only sql and files are store kinds."""
    with pytest.raises(ConnectorError):
        open_store("ftp", "x")


@pytest.mark.parametrize("store", ["pg_store", "mariadb_store"])
def test_hostile_strings_round_trip(store: str, request: pytest.FixtureRequest) -> None:
    """Where values are inlined as literals (PostgreSQL's COPY path, connectorx on MariaDB),
    every hostile string as an equality filter returns exactly its rows and the table is intact."""
    import pandas as pd

    connector: Connector = request.getfixturevalue(store)
    url = request.getfixturevalue("pg_url" if store == "pg_store" else "mariadb_url")
    engine = sa.create_engine(url)
    before = pd.read_sql("SELECT * FROM samples ORDER BY id", engine)
    for value in [*HOSTILE, "\\", "'", "\\%", "%_%", "' OR '1'='1", "$$; DROP TABLE samples; --"]:
        for text, keep in [
            (f"s = {quote(value)}", before["s"] == value),
            (f"s CONTAINS {quote(value)}", before["s"].str.contains(value, regex=False)),
        ]:
            query = Query("samples", ("id",), filter=parse(text), order_by=(("id", False),))
            got = read(connector, query).column("id").to_pylist()
            assert got == before.loc[keep.fillna(False).astype(bool), "id"].tolist(), text
    after = pd.read_sql("SELECT * FROM samples ORDER BY id", engine)
    engine.dispose()
    pd.testing.assert_frame_equal(before, after)


def quote(value: str) -> str:
    """A value as a filter string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_negative_zero_equals_zero(store: tuple[Connector, str]) -> None:
    """f = 0 finds the stored -0.0 values (Parquet's dictionary filter on Spark would not)."""
    connector, table = store
    got = read(connector, Query(table, ("id",), filter=parse("f = 0"), order_by=(("id", False),)))
    want = [r["id"] for r in sample_arrow().to_pylist() if r["f"] == 0]
    assert want and got.column("id").to_pylist() == want
