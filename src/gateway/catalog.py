"""The catalog: datasets registered on this node, their registration, search and paging.

Entries live in the node database with the columns their search needs (``catalog_search``);
a document is validated into a ``Dataset`` the first time it is asked for and kept, so start-up
reads no document it does not need and a registration touches its own rows only. Registration
is incremental and in bulk: the config's datasets are compared by digest, and only new or
changed ones are checked against their stores and written, in large transactions, each with its
audit entries.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Generator, ItemsView, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from typing import Any

import sqlalchemy as sa

from audit.store import begin_immediate
from connectors.datasets import Dataset
from connectors.errors import ConnectorError, SchemaMismatchError
from gateway.catalog_search import (
    Criteria,
    digest,
    fts_match,
    index_row,
    matches,
    search,
    where,
)
from gateway.db import catalog_table
from gateway.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from gateway.stores import Stores

__all__ = ["Catalog", "Criteria", "Record", "RecordMany", "search"]

Record = Callable[[sa.Connection, Dataset], None]
RecordMany = Callable[[sa.Connection, Sequence[Dataset]], None]
_CHUNK = 2_000  # datasets per transaction of a bulk registration
_PAGE_SCAN_MAX = 2_000  # candidates read at once while filling a page
_ANALYZE_AFTER = 1_000  # entries written in bulk after which PostgreSQL's statistics are renewed


class Catalog:
    """Datasets of this node, kept in the node database; validated entries kept in memory."""

    def __init__(self, engine: sa.Engine, stores: Stores) -> None:
        self._engine = engine
        self._stores = stores
        self._dialect = engine.dialect.name
        self._lock = threading.Lock()
        # validated entries and the digest of the row they were read from: a page re-reads an
        # entry another replica has replaced since
        self._known: dict[str, tuple[str | None, Dataset]] = {}

    # -- reading ----------------------------------------------------------------------------

    def find(self, dataset_id: str) -> Dataset | None:
        """The dataset ``dataset_id``, or None if it is not registered here."""
        known = self._known.get(dataset_id)
        if known is not None:
            return known[1]
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(_document(), catalog_table.c.digest).where(
                    catalog_table.c.id == dataset_id
                )
            ).first()
        return None if row is None else self._entry(dataset_id, row[0], row[1])

    def get(self, dataset_id: str) -> Dataset:
        """The dataset ``dataset_id``; NotFound if it is not registered here."""
        found = self.find(dataset_id)
        if found is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        return found

    def find_many(self, dataset_ids: Sequence[str]) -> dict[str, Dataset]:
        """The datasets among ``dataset_ids`` registered here, by id, read in one query."""
        wanted = list(dict.fromkeys(dataset_ids))
        found = {i: known[1] for i in wanted if (known := self._known.get(i)) is not None}
        missing = [i for i in wanted if i not in found]
        t = catalog_table
        with self._engine.connect() as conn:
            for start in range(0, len(missing), _PAGE_SCAN_MAX):
                chunk = missing[start : start + _PAGE_SCAN_MAX]
                query = sa.select(t.c.id, _document(), t.c.digest).where(t.c.id.in_(chunk))
                rows: list[Any] = list(conn.execute(query))
                for dataset_id, doc, sha in rows:
                    found[str(dataset_id)] = self._entry(str(dataset_id), doc, sha)
        return {i: found[i] for i in wanted if i in found}

    def present(self, dataset_ids: Sequence[str]) -> set[str]:
        """Which of ``dataset_ids`` are registered here (ids only: no document is read)."""
        wanted = list(dict.fromkeys(dataset_ids))
        found: set[str] = set()
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _PAGE_SCAN_MAX):
                chunk = wanted[start : start + _PAGE_SCAN_MAX]
                query = sa.select(catalog_table.c.id).where(catalog_table.c.id.in_(chunk))
                ids: list[Any] = list(conn.execute(query).scalars())
                found.update(str(i) for i in ids)
        return found

    def ids(self, *, limit: int | None = None) -> list[str]:
        """The ids of the registered datasets, sorted (the first ``limit`` of them, if given)."""
        query = sa.select(catalog_table.c.id).order_by(catalog_table.c.id).limit(limit)
        with self._engine.connect() as conn:
            found: list[Any] = list(conn.execute(query).scalars())
        return [str(i) for i in found]

    def all(self) -> list[Dataset]:
        """Every registered dataset, by id (reads them all: for small catalogs and tests)."""
        return list(self.iterate(Criteria()))

    def count(self, institution: str | None = None) -> int:
        """How many datasets are registered (of ``institution``, if given)."""
        query = sa.select(sa.func.count()).select_from(catalog_table)
        if institution is not None:
            query = query.where(catalog_table.c.institution == institution)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def names(self, institution: str, *, limit: int | None = None) -> list[str]:
        """The names of ``institution``'s datasets, sorted (the first ``limit``, if given)."""
        t = catalog_table
        query = sa.select(t.c.name).where(t.c.institution == institution)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.name).limit(limit))
            return list(rows.scalars())

    def institutions(self) -> list[str]:
        """The institutions with datasets here, sorted."""
        with self._engine.connect() as conn:
            query = sa.select(catalog_table.c.institution).distinct()
            return sorted(conn.execute(query).scalars())

    def licences(self) -> list[str]:
        """The licences the registered datasets name (each once)."""
        with self._engine.connect() as conn:
            docs = conn.execute(
                sa.select(catalog_table.c.license_key, sa.func.min(catalog_table.c.id)).group_by(
                    catalog_table.c.license_key
                )
            ).all()
        return sorted({self.get(str(first)).license for _key, first in docs})

    def by_domain(self) -> Mapping[str, Mapping[str, Dataset]]:
        """A live view of the catalog by institution, then name (what policies check against)."""
        return _Domains(self)

    def page(
        self,
        criteria: Criteria,
        *,
        after: int | None = None,
        limit: int = 100,
        keep: Callable[[Dataset], bool] | None = None,
    ) -> tuple[list[Dataset], int | None]:
        """Up to ``limit`` matches past place ``after`` that ``keep`` accepts, in the catalog's
        order, and the place to continue after (None when no dataset is left)."""
        found: list[Dataset] = []
        with (
            self._engine.connect() as conn,
            closing(self._candidates(conn, criteria, after, limit)) as rows,
        ):
            for seq, dataset_id, doc, sha in rows:
                after = seq
                ds = self._entry(dataset_id, doc, sha)
                if matches(ds, criteria) and (keep is None or keep(ds)):
                    found.append(ds)
                    if len(found) == limit:
                        return found, after
        return found, None

    def iterate(
        self, criteria: Criteria, keep: Callable[[Dataset], bool] | None = None
    ) -> Iterator[Dataset]:
        """Every match ``keep`` accepts, in the catalog's order, page by page."""
        after: int | None = None
        while True:
            found, after = self.page(criteria, after=after, limit=_PAGE_SCAN_MAX, keep=keep)
            yield from found
            if after is None:
                return

    def _candidates(
        self, conn: sa.Connection, criteria: Criteria, after: int | None, limit: int
    ) -> Generator[Any]:
        """The rows that may match, in the catalog's order past ``after``, read as asked for:
        SQLite steps one statement on (its FTS5 query is evaluated once, not once a batch);
        other databases read keyset batches, doubling while the exact check refuses most."""
        # the first batch has room for the candidates the exact check refuses (a word found in
        # a column of another PSPP role than the one asked for), so a page is mostly one read
        scan = min(max(limit + limit // 2, 32), _PAGE_SCAN_MAX)
        query, order = self._query(conn, criteria, scan)
        if self._dialect == "sqlite":
            bound = [order > after] if after is not None else []
            result = conn.execute(query.where(*bound))
            try:
                while rows := result.fetchmany(scan):
                    yield from rows
                    scan = min(scan * 2, _PAGE_SCAN_MAX)
            finally:
                result.close()
            return
        while True:
            bound = [order > after] if after is not None else []
            rows = list(conn.execute(query.where(*bound).limit(scan)))
            yield from rows
            if len(rows) < scan:
                return
            after = rows[-1][0]
            scan = min(scan * 2, _PAGE_SCAN_MAX)  # most candidates refused: read more at once

    def _query(
        self, conn: sa.Connection, criteria: Criteria, limit: int
    ) -> tuple[sa.Select[Any], sa.ColumnElement[Any]]:
        """The candidates' query (ordered, without place or limit) and the column it is
        ordered by."""
        t = catalog_table
        conditions = where(criteria, self._dialect)
        match = fts_match(criteria) if self._dialect == "sqlite" else None
        order: sa.ColumnElement[Any] = t.c.seq
        source: sa.FromClause = t
        if match is not None:  # FTS5 yields its matches in rowid (= seq) order: no sort
            order = _FTS.c.rowid
            source = _FTS.join(t, t.c.seq == _FTS.c.rowid)
            conditions.append(sa.literal_column("catalog_fts").op("MATCH")(match))
        ordering = order
        if self._dialect == "postgresql" and criteria.q and _few_matches(conn, conditions, limit):
            # Few matches: collect them all through the text index and sort them (ordering by
            # an expression keeps the planner off walking the catalog's order row by row, which
            # for a rare word reads most of the table before its page is full)
            ordering = order + 0
        query = (
            sa.select(t.c.seq, t.c.id, _document(), t.c.digest)
            .select_from(source)
            .where(*conditions)
            .order_by(ordering)
        )
        return query, order

    def _entry(self, dataset_id: str, doc: Any, sha: str | None) -> Dataset:
        known = self._known.get(dataset_id)
        if known is not None and (sha is None or known[0] == sha):
            return known[1]
        found = (
            Dataset.model_validate_json(doc)
            if isinstance(doc, str | bytes)
            else Dataset.model_validate(doc)
        )
        with self._lock:
            self._known[dataset_id] = (sha, found)
        return found

    # -- writing ----------------------------------------------------------------------------

    def register(
        self, dataset: Dataset, *, by: str, replace: bool = False, record: Record | None = None
    ) -> Dataset:
        """Validate ``dataset`` against its store and record it (Conflict if it exists); the row
        and what ``record`` writes commit in one transaction, and the dataset is served only
        once they have."""
        self.validate(dataset)
        try:
            with self._engine.begin() as conn:
                begin_immediate(conn)  # SQLite: the existence check and the write as one
                exists = conn.execute(
                    sa.select(catalog_table.c.id).where(catalog_table.c.id == dataset.id)
                ).first()
                if exists and not replace:
                    raise Conflict(f"dataset {dataset.id!r} is registered already")
                self._write(conn, [dataset], by, replaced=[dataset.id] if exists else [])
                if record is not None:
                    record(conn, dataset)
        except sa.exc.IntegrityError as exc:  # another replica registered it meanwhile
            raise Conflict(f"dataset {dataset.id!r} is registered already") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise ServiceUnavailable(
                f"the catalog could not be written: {exc.__class__.__name__}"
            ) from exc
        self._keep([(dataset, digest(dataset))])
        return dataset

    def sync(
        self, datasets: Iterable[Dataset], *, by: str, record: RecordMany | None = None
    ) -> list[Dataset]:
        """Make the config's datasets registered as written (at start-up): new and changed ones
        are validated and written in bulk, each with its entry; return those written."""
        self.reindex()
        return self.register_many(datasets, by=by, record=record)

    def register_many(
        self, datasets: Iterable[Dataset], *, by: str, record: RecordMany | None = None
    ) -> list[Dataset]:
        """Register or replace ``datasets``, skipping those registered exactly so already; each
        chunk commits with what ``record`` writes for it, or not at all."""
        wanted = {ds.id: (ds, digest(ds)) for ds in datasets}
        with self._engine.connect() as conn:
            query = sa.select(catalog_table.c.id, catalog_table.c.digest)
            stored: dict[str, Any] = {str(i): d for i, d in conn.execute(query)}
        changed = [ds for ds, sha in wanted.values() if stored.get(ds.id) != sha]
        self.validate_many(changed)
        written: list[Dataset] = []
        for start in range(0, len(changed), _CHUNK):
            chunk = changed[start : start + _CHUNK]
            for attempt in (1, 2):
                try:
                    written += self._write_chunk(chunk, by, record, wanted)
                    break
                except sa.exc.IntegrityError as exc:  # a replica starting with us wrote first
                    if attempt == 2:
                        raise Conflict("the catalog changed while it was being written") from exc
                except sa.exc.SQLAlchemyError as exc:
                    raise ServiceUnavailable(
                        f"the catalog could not be written: {exc.__class__.__name__}"
                    ) from exc
        self._keep((ds, wanted[ds.id][1]) for ds in written)
        if self._dialect == "postgresql" and len(written) >= _ANALYZE_AFTER:
            # the planner picks a search's plan by the words' statistics: gather them now
            # rather than leave the first searches to plans made without them
            try:
                with self._engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE catalog_datasets")
            except sa.exc.SQLAlchemyError:
                pass  # written already; without fresh statistics searches are only slower
        return written

    def _write_chunk(
        self,
        chunk: Sequence[Dataset],
        by: str,
        record: RecordMany | None,
        wanted: Mapping[str, tuple[Dataset, str]],
    ) -> list[Dataset]:
        t = catalog_table
        with self._engine.begin() as conn:
            begin_immediate(conn)
            ids = [ds.id for ds in chunk]
            query = sa.select(t.c.id, t.c.digest).where(t.c.id.in_(ids))
            stored: dict[str, Any] = {str(i): d for i, d in conn.execute(query)}
            todo = [ds for ds in chunk if stored.get(ds.id) != wanted[ds.id][1]]
            if not todo:
                return []
            self._write(conn, todo, by, replaced=[ds.id for ds in todo if ds.id in stored])
            if record is not None:
                record(conn, todo)
        return todo

    def _write(
        self, conn: sa.Connection, datasets: Sequence[Dataset], by: str, *, replaced: list[str]
    ) -> None:
        t = catalog_table
        now = dt.datetime.now(dt.UTC)
        places: dict[str, int] = {}
        if replaced:  # a replaced entry keeps its place in the catalog's order
            found: list[Any] = list(
                conn.execute(sa.select(t.c.id, t.c.seq).where(t.c.id.in_(replaced)))
            )
            places = {str(i): int(seq) for i, seq in found if seq is not None}
            conn.execute(t.delete().where(t.c.id.in_(replaced)))
            if self._dialect == "sqlite":
                conn.execute(
                    sa.text("DELETE FROM catalog_fts WHERE rowid = :r"),
                    [{"r": seq} for seq in places.values()],
                )
        fresh = iter(self._places(conn, sum(1 for ds in datasets if ds.id not in places)))
        rows = []
        for ds in datasets:
            document = ds.model_dump_json()
            rows.append(
                {
                    "id": ds.id,
                    "institution": ds.institution,
                    "name": ds.name,
                    "document_json": document,
                    "registered_by": by,
                    "registered_at": now,
                    "seq": places[ds.id] if ds.id in places else next(fresh),
                    **index_row(ds, document),
                }
            )
        # the document goes in as the JSON text it already is, not parsed and dumped again
        as_json: sa.ColumnElement[Any] = sa.bindparam("document_json", type_=sa.Text)
        if self._dialect == "postgresql":
            as_json = sa.cast(as_json, sa.JSON)
        conn.execute(t.insert().values(document=as_json), rows)
        if self._dialect == "sqlite":
            conn.execute(
                sa.text("INSERT INTO catalog_fts (rowid, dataset_id, body) VALUES (:r, :i, :b)"),
                [{"r": r["seq"], "i": r["id"], "b": r["search_text"]} for r in rows],
            )

    def _places(self, conn: sa.Connection, n: int) -> list[int]:
        """``n`` new places at the end of the catalog's order (PostgreSQL: from its sequence;
        elsewhere writers hold the database's write lock, so the largest place is the last)."""
        if n == 0:
            return []
        if self._dialect == "postgresql":
            query = sa.text("SELECT nextval('catalog_datasets_seq') FROM generate_series(1, :n)")
            places: list[Any] = list(conn.execute(query, {"n": n}).scalars())
            return [int(v) for v in places]
        last = conn.execute(sa.select(sa.func.max(catalog_table.c.seq))).scalar()
        start = int(last or 0) + 1
        return list(range(start, start + n))

    def reindex(self) -> int:
        """Fill in the search columns of rows written before they existed (or by an older
        version of the node); return how many."""
        t = catalog_table
        with self._engine.begin() as conn:
            begin_immediate(conn)
            query = sa.select(t.c.id, t.c.seq, _document()).where(
                sa.or_(t.c.digest.is_(None), t.c.seq.is_(None))
            )
            rows: list[tuple[str, Any, Any]] = [
                (str(i), seq, doc) for i, seq, doc in conn.execute(query)
            ]
            fresh = iter(self._places(conn, sum(1 for _i, seq, _d in rows if seq is None)))
            for dataset_id, seq, doc in rows:
                place = int(seq) if seq is not None else next(fresh)
                index = index_row(self._entry(dataset_id, doc, None))
                conn.execute(t.update().where(t.c.id == dataset_id).values(seq=place, **index))
                if self._dialect == "sqlite":
                    conn.execute(
                        sa.text(
                            "INSERT OR REPLACE INTO catalog_fts (rowid, dataset_id, body) "
                            "VALUES (:r, :i, :b)"
                        ),
                        {"r": place, "i": dataset_id, "b": index["search_text"]},
                    )
        return len(rows)

    def _keep(self, written: Iterable[tuple[Dataset, str]]) -> None:
        with self._lock:
            for ds, sha in written:
                self._known[ds.id] = (sha, ds)

    def validate(self, dataset: Dataset) -> None:
        """Check the declared schema against the store's actual table or file."""
        self.validate_many([dataset])

    def validate_many(self, datasets: Iterable[Dataset]) -> None:
        """``validate`` for many datasets, each store's tables read once."""
        by_store: dict[str, list[Dataset]] = {}
        for ds in datasets:
            by_store.setdefault(ds.location.store, []).append(ds)
        for store, found in by_store.items():
            if store not in self._stores:
                raise Unprocessable(f"location.store: no store {store!r} on this node")
            try:
                self._stores.get(store).validate_many(found)
            except SchemaMismatchError as exc:
                raise Unprocessable(f"schema does not match the store: {exc}") from exc
            except ConnectorError as exc:
                raise ServiceUnavailable(f"store {store!r}: {exc}") from exc


_FTS = sa.table("catalog_fts", sa.column("rowid", sa.BigInteger))  # SQLite's FTS5 table


def _few_matches(conn: sa.Connection, conditions: list[sa.ColumnElement[bool]], limit: int) -> bool:
    """Whether collecting every match and sorting them reads fewer rows than walking the
    catalog's order until ``limit`` are found (PostgreSQL: by the planner's estimates, which
    cost a plan and no read). A walk reads about limit * rows / matches rows; collecting reads
    about 4 * matches: the matches and the rows the text and licence indexes let through that
    the other conditions refuse."""
    matches = _estimate(conn, sa.select(catalog_table.c.seq).where(*conditions))
    rows = _estimate(conn, sa.select(catalog_table.c.seq))
    return 4 * matches * matches < limit * rows


def _estimate(conn: sa.Connection, query: sa.Select[Any]) -> float:
    """The planner's estimate of the rows ``query`` returns."""
    compiled = query.compile(conn)
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()
    found: Any = json.loads(plan) if isinstance(plan, str) else plan
    return float(found[0]["Plan"]["Plan Rows"]) if found else 0.0


def _document() -> sa.ColumnElement[Any]:
    """The stored document as JSON text: validated straight from text, never parsed twice."""
    return sa.cast(catalog_table.c.document, sa.Text)


class _Domain(Mapping[str, Dataset]):
    """One institution's datasets by name, read from the catalog when asked for."""

    def __init__(self, catalog: Catalog, institution: str) -> None:
        self._catalog = catalog
        self._institution = institution

    def __getitem__(self, name: str) -> Dataset:
        found = self._catalog.find(f"{self._institution}/{name}")
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.names(self._institution))

    def __len__(self) -> int:
        return self._catalog.count(self._institution)

    def items(self) -> ItemsView[str, Dataset]:
        """Every dataset of the institution, read in pages rather than one by one."""
        found = self._catalog.iterate(Criteria(institution=self._institution))
        return {ds.name: ds for ds in found}.items()


class _Domains(Mapping[str, Mapping[str, Dataset]]):
    """The catalog by institution."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __getitem__(self, institution: str) -> Mapping[str, Dataset]:
        if not self._catalog.count(institution):
            raise KeyError(institution)
        return _Domain(self._catalog, institution)

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.institutions())

    def __len__(self) -> int:
        return len(self._catalog.institutions())
