"""Folders of measurement files: CSV or Parquet files (or folders of them) read with pyarrow.

A table name is a path relative to the store's root (``steels.csv``, ``runs/2024``); the format
follows the extension (``.csv``, ``.parquet``/``.pq``; a folder takes the format of its files).
Projection and the compiled filter are pushed into the dataset scanner, which streams batches;
``order_by`` materialises the filtered, projected rows to sort them, so an ordered read holds the
whole slice in memory (an unordered one holds one batch).

Nothing outside the root is read: a table path is resolved (``..`` and symlinks followed) and
must stay under the root, and so must every file of a folder table; hidden files (``.``, ``_``)
are skipped as pyarrow's discovery skips them, and the dataset is opened on the checked list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from connectors.arrowcompile import compile_arrow
from connectors.base import ARROW_TYPES, Connector, column_type
from connectors.errors import StoreError, TableError
from connectors.query import MaskKind, Query
from connectors.sqlcompile import REDACTED

__all__ = ["FilesConnector"]

# CSV types are inferred from the first block: a large block keeps sparse columns typed.
_CSV = ds.CsvFileFormat(read_options=pacsv.ReadOptions(block_size=16 << 20))
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class FilesConnector(Connector):
    """CSV and Parquet files under one root folder."""

    kind = "files"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise StoreError(f"store folder {str(self.root)!r} does not exist")
        self._datasets: dict[str, ds.Dataset] = {}
        self._lock = threading.Lock()

    def _path(self, table: str) -> Path:
        if not table or "\x00" in table or Path(table).is_absolute():
            raise TableError(f"{table!r} is not a path relative to the store")
        path = (self.root / table).resolve()
        if not path.is_relative_to(self.root):
            raise TableError(f"{table!r} points outside the store")
        if not path.exists():
            raise TableError(f"{table!r} does not exist in the store")
        return path

    def dataset(self, table: str) -> ds.Dataset:
        """The pyarrow dataset behind ``table``, opened once."""
        with self._lock:
            found = self._datasets.get(table)
            if found is not None:
                return found
            path = self._path(table)
            files = self._files(table, path)
            formats = {_FORMATS.get(f.suffix.lower()) for f in files}
            if len(formats) != 1:
                raise TableError(f"{table!r} must hold CSV or Parquet files, one format only")
            try:
                kind = formats.pop()
                found = ds.dataset([str(f) for f in files], format=_CSV if kind == "csv" else kind)
            except (pa.ArrowInvalid, OSError) as exc:
                raise TableError(f"cannot read {table!r}: {exc}") from exc
            self._datasets[table] = found
            return found

    def _files(self, table: str, path: Path) -> list[Path]:
        """The data files of ``table``, each resolved and checked to lie under the root."""
        if not path.is_dir():
            return [path]
        found = []
        for entry in sorted(path.rglob("*")):
            parts = entry.relative_to(path).parts
            if any(p.startswith((".", "_")) for p in parts):
                continue
            real = entry.resolve()
            if not real.is_relative_to(self.root):
                inner = str(entry.relative_to(path))
                raise TableError(f"{table!r} holds {inner!r}, a link outside the store")
            if real.is_file() and entry.suffix.lower() in _FORMATS:
                found.append(real)
        if not found:
            raise TableError(f"{table!r} must hold CSV or Parquet files, one format only")
        return found

    def _arrow_schema(self, table: str) -> pa.Schema:
        fields = []
        for field in self.dataset(table).schema:
            kind = column_type(field.type)
            if kind is None:
                continue
            target = ARROW_TYPES[kind]
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                target = pa.timestamp("us", tz="UTC")
            fields.append(pa.field(field.name, target))
        return pa.schema(fields)

    def _scanner(self, query: Query, columns: list[str], batch_rows: int) -> ds.Scanner:
        dataset = self.dataset(query.table)
        expression = (
            compile_arrow(query.filter, dataset.schema) if query.filter is not None else None
        )
        return dataset.scanner(columns=columns, filter=expression, batch_size=batch_rows)

    def _count(self, query: Query) -> int:
        try:
            total = self._scanner(query, [], 65536).count_rows()
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreError(f"cannot count {query.table!r}: {exc}") from exc
        total = max(total - query.offset, 0)
        return total if query.limit is None else min(total, query.limit)

    def _batches(
        self, query: Query, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        read = sorted(
            {n for n in query.columns if n not in query.masks or _reads(query, n)}
            | {n for n, _ in query.order_by}
        )
        try:
            scanner = self._scanner(query, read, batch_rows)
            if query.order_by:
                keys = [(n, "descending" if desc else "ascending") for n, desc in query.order_by]
                table = scanner.to_table().sort_by(keys)  # nulls last, as in SQL here
                source: Iterator[pa.RecordBatch] = iter(_page(table, query).to_batches(batch_rows))
            else:
                source = _paged(scanner.to_batches(), query)
            for batch in source:
                yield _project(batch, query, schema)
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreError(f"cannot read {query.table!r}: {exc}") from exc


def _reads(query: Query, name: str) -> bool:
    return query.masks[name].kind is MaskKind.HASH


def _page(table: pa.Table, query: Query) -> pa.Table:
    length = None if query.limit is None else query.limit
    return table.slice(query.offset, length)


def _paged(batches: Iterator[pa.RecordBatch], query: Query) -> Iterator[pa.RecordBatch]:
    skip, left = query.offset, query.limit
    for batch in batches:
        if left is not None and left <= 0:
            return
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        batch = batch.slice(skip, None if left is None else left)
        skip = 0
        if left is not None:
            left -= batch.num_rows
        yield batch


def _constant_text(text: str, rows: int) -> pa.Array:
    # Built from buffers: one repeated byte string and evenly spaced offsets, no per-row objects.
    data = text.encode("utf-8")
    offsets = np.arange(rows + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data * rows))


def _project(batch: pa.RecordBatch, query: Query, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field in schema:
        mask = query.masks.get(field.name)
        if mask is not None and mask.kind is MaskKind.NULL:
            arrays.append(pa.nulls(batch.num_rows, field.type))
        elif mask is not None and mask.kind is MaskKind.REDACT:
            arrays.append(_constant_text(REDACTED, batch.num_rows))
        else:
            column = batch.column(field.name)
            arrays.append(column if column.type == field.type else pc.cast(column, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
