"""The catalog: datasets registered on this node, their search, and their registration."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from audit.store import begin_immediate
from connectors.datasets import Dataset, PSPPRole
from connectors.errors import ConnectorError, SchemaMismatchError
from gateway.db import catalog_table
from gateway.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from gateway.stores import Stores

__all__ = ["Catalog", "Criteria", "search"]

Record = Callable[[sa.Connection, Dataset], None]


class Catalog:
    """Datasets of this node, kept in the node database and cached in memory."""

    def __init__(self, engine: sa.Engine, stores: Stores) -> None:
        self._engine = engine
        self._stores = stores
        self._lock = threading.Lock()
        self._cache: dict[str, Dataset] | None = None

    def all(self) -> list[Dataset]:
        """Every registered dataset, by id."""
        return sorted(self._load().values(), key=lambda d: d.id)

    def get(self, dataset_id: str) -> Dataset:
        """The dataset ``dataset_id``; NotFound if it is not registered here."""
        found = self._load().get(dataset_id)
        if found is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        return found

    def register(
        self, dataset: Dataset, *, by: str, replace: bool = False, record: Record | None = None
    ) -> Dataset:
        """Validate ``dataset`` against its store and record it (Conflict if it exists); the row
        and what ``record`` writes commit in one transaction, and the dataset is served only
        once they have."""
        self.validate(dataset)
        row = {
            "id": dataset.id,
            "institution": dataset.institution,
            "name": dataset.name,
            "document": dataset.model_dump(mode="json"),
            "registered_by": by,
            "registered_at": dt.datetime.now(dt.UTC),
        }
        try:
            with self._engine.begin() as conn:
                begin_immediate(conn)  # SQLite: the existence check and the write as one
                exists = conn.execute(
                    sa.select(catalog_table.c.id).where(catalog_table.c.id == dataset.id)
                ).first()
                if exists and not replace:
                    raise Conflict(f"dataset {dataset.id!r} is registered already")
                if exists:
                    conn.execute(catalog_table.delete().where(catalog_table.c.id == dataset.id))
                conn.execute(catalog_table.insert().values(**row))
                if record is not None:
                    record(conn, dataset)
        except sa.exc.IntegrityError as exc:  # another replica registered it meanwhile
            raise Conflict(f"dataset {dataset.id!r} is registered already") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise ServiceUnavailable(
                f"the catalog could not be written: {exc.__class__.__name__}"
            ) from exc
        finally:
            with self._lock:
                self._cache = None
        return dataset

    def sync(self, datasets: Iterable[Dataset], *, by: str, record: Record | None = None) -> None:
        """Make the config's datasets registered as written (at start-up), each change recorded."""
        for dataset in datasets:
            for attempt in (1, 2):
                if self._load().get(dataset.id) == dataset:
                    break
                try:
                    self.register(dataset, by=by, replace=True, record=record)
                    break
                except Conflict:  # a replica starting with us wrote it first: look again
                    if attempt == 2:
                        raise

    def validate(self, dataset: Dataset) -> None:
        """Check the declared schema against the store's actual table or file."""
        if dataset.location.store not in self._stores:
            raise Unprocessable(f"location.store: no store {dataset.location.store!r} on this node")
        try:
            self._stores.get(dataset.location.store).validate(dataset)
        except SchemaMismatchError as exc:
            raise Unprocessable(f"schema does not match the store: {exc}") from exc
        except ConnectorError as exc:
            raise ServiceUnavailable(f"store {dataset.location.store!r}: {exc}") from exc

    def _load(self) -> dict[str, Dataset]:
        with self._lock:
            if self._cache is None:
                with self._engine.connect() as conn:
                    rows: list[Any] = list(
                        conn.execute(sa.select(catalog_table.c.document)).scalars().all()
                    )
                self._cache = {d.id: d for d in (Dataset.model_validate(r) for r in rows)}
            return self._cache


@dataclass(frozen=True)
class Criteria:
    """A catalog search: every given criterion must hold; ``q`` matches all its words."""

    q: str | None = None
    pspp: tuple[PSPPRole, ...] = ()
    column: str | None = None
    unit: str | None = None
    license: str | None = None
    institution: str | None = None

    def params(self) -> dict[str, Any]:
        """The same search as query parameters (for a peer's ``/catalog``)."""
        found = {k: v for k, v in asdict(self).items() if v not in (None, (), "")}
        if self.pspp:
            found["pspp"] = [r.value for r in self.pspp]
        return found


def search(datasets: Iterable[Dataset], criteria: Criteria) -> list[Dataset]:
    """The datasets that match ``criteria``."""
    c = criteria
    words = [w for w in (c.q or "").lower().split() if w]
    found = []
    for ds in datasets:
        if c.institution and ds.institution != c.institution:
            continue
        if c.license and ds.license.lower() != c.license.lower():
            continue
        if c.pspp and not {col.pspp for col in ds.columns} & set(c.pspp):
            continue
        if c.column and not any(c.column.lower() in col.name.lower() for col in ds.columns):
            continue
        if c.unit and not any((col.unit or "").lower() == c.unit.lower() for col in ds.columns):
            continue
        if words:
            text = _text(ds, c.pspp)
            if not all(w in text for w in words):
                continue
        found.append(ds)
    return found


def _text(ds: Dataset, pspp: Sequence[PSPPRole]) -> str:
    # With a PSPP role asked for, words must be found in the dataset or in columns of that role.
    cols = [c for c in ds.columns if not pspp or c.pspp in pspp]
    parts = [ds.id, ds.title, ds.description, " ".join(ds.keywords), ds.method or ""]
    parts += [f"{c.name} {c.name.replace('_', ' ')} {c.description} {c.unit or ''}" for c in cols]
    return " ".join(parts).lower()
