"""The catalog's index on SQLite and PostgreSQL: bulk registration is one-by-one registration,
search answers what the reference scan answers, pages hold every dataset exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from catalog_support import (
    LICENCES,
    OPEN,
    catalog_on,
    criteria,
    datasets,
    node_database,
    rows,
    store,
)

from connectors.datasets import Dataset, PSPPRole
from gateway import catalog as catalog_module
from gateway.catalog import Catalog
from gateway.catalog_search import Criteria, search
from gateway.errors import Conflict


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().dispose()


KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A node database URL of each kind."""
    yield from node_database(request.param, request, tmp_path)


@pytest.fixture(params=KINDS)
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two node databases of the same kind."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = node_database(request.param, request, tmp_path / "a")
    b = node_database(request.param, request, tmp_path / "b")
    yield next(a), next(b)
    for rest in (a, b):
        next(rest, None)  # drop the schema


def _fts(engine: sa.Engine) -> list[tuple[str, str]]:
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT dataset_id, body FROM catalog_fts ORDER BY dataset_id")
        return [(str(i), str(b)) for i, b in found]


def test_bulk_registration_writes_what_one_by_one_registration_writes(tmp_path, two_databases):
    stores = store(tmp_path)
    entries = datasets(seed=7, n=300)
    bulk, bulk_engine = catalog_on(two_databases[0], stores)
    one, one_engine = catalog_on(two_databases[1], stores)
    recorded: list[str] = []
    written = bulk.register_many(
        entries, by="config@alpha", record=lambda _c, ds: recorded.extend(d.id for d in ds)
    )
    assert sorted(d.id for d in written) == sorted(recorded) == sorted(d.id for d in entries)
    for ds in entries:
        one.register(ds, by="config@alpha")
    assert rows(bulk_engine) == rows(one_engine)
    assert _fts(bulk_engine) == _fts(one_engine)
    assert len(_fts(bulk_engine)) == (len(entries) if bulk_engine.dialect.name == "sqlite" else 0)
    assert bulk.register_many(entries, by="config@alpha") == []  # nothing changed, nothing written


def test_sync_writes_only_new_and_changed_entries(tmp_path, database):
    stores = store(tmp_path)
    entries = datasets(seed=3, n=120)
    catalog, _engine = catalog_on(database, stores)
    assert len(catalog.sync(entries, by="config@alpha")) == 120
    fresh = Catalog(_engine, stores)  # a warm start: another process, same database
    assert fresh.sync(entries, by="config@alpha") == []
    changed = entries[5].model_copy(update={"title": "A new title"})
    added = datasets(seed=4, n=1, prefix="new")[0]
    written = fresh.sync([*entries[:5], changed, *entries[6:], added], by="config@alpha")
    assert sorted(d.id for d in written) == sorted([changed.id, added.id])
    assert fresh.get(changed.id).title == "A new title"
    assert Catalog(_engine, stores).get(changed.id).title == "A new title"


def test_a_registration_commits_with_its_record_or_not_at_all(tmp_path, database):
    stores = store(tmp_path)
    catalog, _engine = catalog_on(database, stores)
    entries = datasets(seed=5, n=30)

    def refuse(_conn: sa.Connection, _ds: object) -> None:
        raise RuntimeError("the audit log refuses")

    with pytest.raises(RuntimeError):
        catalog.register_many(entries, by="config@alpha", record=refuse)
    assert catalog.count() == 0 and catalog.find(entries[0].id) is None
    assert list(catalog.iterate(search_all())) == []
    catalog.register(entries[0], by="steward")
    with pytest.raises(Conflict):
        catalog.register(entries[0], by="steward")


def search_all() -> Criteria:
    """The empty search: everything."""
    return Criteria()


def test_search_answers_what_the_reference_scan_answers(tmp_path, database):
    stores = store(tmp_path)
    entries = datasets(seed=11, n=400) + datasets(seed=12, n=100, institution="beta")
    catalog, _engine = catalog_on(database, stores)
    catalog.register_many(entries, by="config")
    for c in criteria(seed=13, n=150):
        expected = sorted(d.id for d in search(entries, c))
        got = [d.id for d in catalog.iterate(c)]
        assert sorted(got) == expected, c
        assert got == [d.id for d in entries if d.id in set(expected)]  # registration order


def test_rows_written_before_the_index_are_indexed_at_start(tmp_path, database):
    stores = store(tmp_path)
    entries = datasets(seed=21, n=50)
    catalog, engine = catalog_on(database, stores)
    catalog.register_many(entries, by="config")
    with engine.begin() as conn:  # as revision 0005 left them
        conn.exec_driver_sql(
            "UPDATE catalog_datasets SET digest = NULL, search_text = NULL, roles = NULL, "
            "units = NULL, column_names = NULL, license_key = NULL"
        )
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DELETE FROM catalog_fts")
    restarted = Catalog(engine, stores)
    assert restarted.sync(entries, by="config") == []  # indexed, and found unchanged
    for c in criteria(seed=22, n=40):
        assert sorted(d.id for d in restarted.iterate(c)) == sorted(
            d.id for d in search(entries, c)
        )


def test_pages_hold_every_dataset_once_while_datasets_are_added(tmp_path, database):
    stores = store(tmp_path)
    first = datasets(seed=31, n=90)
    catalog, _engine = catalog_on(database, stores)
    catalog.register_many(first, by="config")
    late = iter(datasets(seed=32, n=60, prefix="late"))
    seen: list[str] = []
    after: int | None = None
    added: list[Dataset] = []
    while True:
        page, after = catalog.page(search_all(), after=after, limit=7)
        seen += [d.id for d in page]
        for _ in range(3):  # new entries land before and after the cursor alike
            ds = next(late, None)
            if ds is not None:
                catalog.register(ds, by="steward")
                added.append(ds)
        if after is None:
            break
    assert len(seen) == len(set(seen))
    # new entries come after every older one: the walk meets them all, once, in order
    assert seen == [d.id for d in first] + [d.id for d in added]


def test_a_replica_reads_an_entry_another_replica_replaced(tmp_path, database):
    stores = store(tmp_path)
    entries = datasets(seed=41, n=20)
    one, engine = catalog_on(database, stores)
    other = Catalog(engine, stores)
    one.register_many(entries, by="config")
    assert len(list(other.iterate(search_all()))) == 20  # read, and kept in memory
    changed = entries[3].model_copy(update={"title": "Zirconia fracture toughness"})
    one.register(changed, by="steward", replace=True)
    found = list(other.iterate(Criteria(q="zirconia toughness")))
    assert [d.id for d in found] == [changed.id] and found[0].title == changed.title
    assert [d.id for d in other.iterate(search_all())] == [d.id for d in entries]  # same place


def test_targeted_reads_answer_what_the_whole_catalog_answers(tmp_path, database):
    # what the faces read instead of the whole catalog: datasets by id, ids and names only
    stores = store(tmp_path)
    entries = datasets(seed=11, n=2_300) + datasets(seed=12, n=40, institution="beta")
    written, engine = catalog_on(database, stores)
    written.register_many(entries, by="config@alpha")
    catalog = Catalog(engine, stores)  # nothing validated yet: everything read from the rows
    everything = {ds.id: ds for ds in catalog.all()}
    wanted = [entries[2_250].id, "alpha/nothing", entries[3].id, entries[3].id]
    wanted += [ds.id for ds in reversed(entries)]  # more ids than one query takes (2,000)
    found = catalog.find_many(wanted)
    assert list(found) == list(dict.fromkeys(i for i in wanted if i in everything))
    assert all(found[i] == everything[i] for i in found)
    assert catalog.present(wanted) == set(found)
    assert catalog.find_many([]) == {} and catalog.present([]) == set()
    assert catalog.ids() == sorted(everything) and catalog.ids(limit=5) == sorted(everything)[:5]
    beta = sorted(ds.name for ds in entries if ds.institution == "beta")
    assert catalog.names("beta") == beta and catalog.names("beta", limit=3) == beta[:3]


def _role_mismatches(n: int) -> list[Dataset]:
    """Datasets whose rare word sits in a column of one PSPP role only, or in their title."""
    roles = list(PSPPRole)
    out = []
    for i in range(n):
        role = roles[i % len(roles)]
        where_word = "title" if i % 7 == 0 else "column"
        title = "Zirconia survey" if where_word == "title" else "A survey"
        columns = [
            {"name": "formula", "type": "string", "pspp": "structure"},
            {
                "name": "c1",
                "type": "float",
                "unit": "MPa" if i % 2 else "K",
                "pspp": role.value,
                "description": "zirconia toughness" if where_word == "column" else "toughness",
            },
        ]
        out.append(
            Dataset.model_validate(
                {
                    "institution": "alpha",
                    "name": f"zr-{i:04d}",
                    "title": title,
                    "license": LICENCES[i % len(LICENCES)],
                    "location": {"store": "lab", "table": "t0"},
                    "columns": columns,
                }
            )
        )
    return out


def _mismatch_criteria() -> list[Criteria]:
    found = [Criteria(q=q, pspp=(role,)) for q in ("zirc", "zirconia") for role in PSPPRole]
    found += [
        Criteria(q="zirc tough", pspp=(PSPPRole.PROPERTY, PSPPRole.CONDITION), unit="MPa"),
        Criteria(q="zir", pspp=(PSPPRole.PROCESSING,), license="mit"),
        Criteria(q="tough", pspp=(PSPPRole.IDENTIFIER,), unit="K", license="cc0-1.0"),
        Criteria(q="survey", institution="alpha", license="apache-2.0"),
        Criteria(license="cc-by-4.0"),
        Criteria(institution="beta"),
    ]
    return found


@pytest.mark.parametrize("few", [False, True], ids=["walk-the-order", "collect-and-sort"])
@pytest.mark.parametrize("limit", [2, 25])
def test_every_page_is_the_reference_scans_slice(tmp_path, database, monkeypatch, few, limit):
    # PostgreSQL picks its plan by the planner's estimate of the matches: both plans are forced
    # here. Pages of every size must hold exactly what the reference scan finds after their
    # cursor, also where the index lets through candidates the exact rule refuses (a word in a
    # column of another PSPP role than the one asked for) and where ``keep`` refuses some.
    monkeypatch.setattr(catalog_module, "_few_matches", lambda *_args: few)
    stores = store(tmp_path)
    entries = _role_mismatches(60) + datasets(seed=31, n=150) + _role_mismatches(40)[::3]
    entries = list({d.id: d for d in entries}.values())
    entries += datasets(seed=32, n=60, institution="beta")
    catalog, _engine = catalog_on(database, stores)
    catalog.register_many(entries, by="config")
    order = [d.id for d in entries]  # registered in one bulk: the catalog's order

    def keep(ds: Dataset) -> bool:
        return not ds.name.endswith(("3", "7"))

    for c in _mismatch_criteria() + criteria(seed=33, n=25):
        for kept in (None, keep):
            expected = [d for d in search(entries, c) if kept is None or kept(d)]
            expected.sort(key=lambda d: order.index(d.id))
            got: list[str] = []
            after: int | None = None
            while True:
                page, after = catalog.page(c, after=after, limit=limit, keep=kept)
                assert [d.id for d in page] == [d.id for d in expected][len(got) :][:limit], c
                got += [d.id for d in page]
                if after is None:
                    break
            assert got == [d.id for d in expected], c
