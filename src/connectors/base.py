"""The connector base: shared validation, schema, masking and batching over store-specific reads.

A connector subclass implements four things (``_columns``, ``_arrow_schema``, ``_count``,
``_batches``); the base validates every query against the store's real schema, computes the
output schema, hashes ``MaskKind.HASH`` columns on the Arrow batches, conforms each batch to the
output schema (casting only when a batch differs), caps batch sizes, and makes sure that even a
zero-row result yields one (empty) batch that carries the schema.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.datasets import ColumnType, Dataset
from connectors.errors import ConnectorError, QueryError, SchemaMismatchError, TableError
from connectors.filterparser import check
from connectors.query import Mask, MaskKind, Query

__all__ = ["ARROW_TYPES", "Connector", "column_type", "hash_column", "open_store"]

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.STRING: pa.string(),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.TIMESTAMP: pa.timestamp("us"),
    ColumnType.DATE: pa.date32(),
}
# A store column of the key type may serve a dataset column declared with any of the values.
_COMPATIBLE = {ColumnType.INTEGER: {ColumnType.INTEGER, ColumnType.FLOAT}}


def column_type(kind: pa.DataType) -> ColumnType | None:
    """The logical type of an Arrow type, or None when the gateway does not serve it."""
    if pa.types.is_boolean(kind):
        return ColumnType.BOOLEAN
    if pa.types.is_integer(kind):
        return ColumnType.INTEGER
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return ColumnType.FLOAT
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ColumnType.STRING
    if pa.types.is_timestamp(kind):
        return ColumnType.TIMESTAMP
    if pa.types.is_date(kind):
        return ColumnType.DATE
    return None


MIN_MASK_KEY_BYTES = 16
_BLOCK = 64  # SHA-256's block size in bytes


def hash_column(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """HMAC-SHA-256 hex of each value's canonical text (Arrow's cast to string); nulls stay.

    Keyed, so that nobody without the key can hash guesses (names, ids) and match them; a hash
    mask without a key fails closed.
    """
    if len(key) < MIN_MASK_KEY_BYTES:
        raise QueryError("a hash mask needs the node's mask key; none was given")
    text = pc.cast(values, pa.string())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    # Hash each distinct value once: masked columns (ids, names) repeat, and hmac is per value.
    encoded = pc.dictionary_encode(text)
    mac = _hmac_sha256(key)
    digests = pa.array(
        [mac(v.encode("utf-8")) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    return pc.take(digests, encoded.indices)


def _hmac_sha256(key: bytes) -> Callable[[bytes], str]:
    """HMAC-SHA-256 (RFC 2104) hex digests under ``key``, with the padded key hashed once.

    The same digests as ``hmac.new(key, msg, sha256)``, about twice as fast per value as
    ``hmac.digest`` here, because the inner and outer states are copied, not rebuilt.
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def mac(message: bytes) -> str:
        i = inner.copy()
        i.update(message)
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return mac


class Connector(ABC):
    """One store: reads permitted slices of its tables as Arrow record batches."""

    kind: str = "abstract"

    @abstractmethod
    def _arrow_schema(self, table: str) -> pa.Schema:
        """The table's columns with their canonical Arrow types (``ARROW_TYPES``); TableError."""

    @abstractmethod
    def _count(self, query: Query) -> int:
        """Rows that ``query`` selects (already validated)."""

    @abstractmethod
    def _batches(
        self, query: Query, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Batches of the validated ``query``, close to ``schema`` (HASH columns still raw)."""

    def close(self) -> None:
        """Release the store's connections."""
        return  # stores without connections (files) have nothing to release

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def arrow_schema(self, table: str) -> pa.Schema:
        """The table's schema in canonical Arrow types (int64, float64, string, bool, ...)."""
        return self._arrow_schema(table)

    def columns(self, table: str) -> dict[str, ColumnType]:
        """The store's actual columns of ``table`` and their logical types."""
        out: dict[str, ColumnType] = {}
        for field in self.arrow_schema(table):
            kind = column_type(field.type)
            if kind is not None:
                out[field.name] = kind
        return out

    def validate_query(self, query: Query) -> dict[str, ColumnType]:
        """Refuse a query the table cannot answer; return the table's columns."""
        columns = self.columns(query.table)
        if not query.columns:
            raise QueryError("a query must select at least one column")
        named = list(query.columns) + [c for c, _ in query.order_by] + list(query.masks)
        unknown = sorted({c for c in named if c not in columns})
        if unknown:
            raise QueryError(f"table {query.table!r} has no column(s) {', '.join(unknown)}")
        if len(set(query.columns)) != len(query.columns):
            raise QueryError("a column is selected twice")
        if query.limit is not None and query.limit < 0:
            raise QueryError(f"limit must not be negative, got {query.limit}")
        if query.offset < 0:
            raise QueryError(f"offset must not be negative, got {query.offset}")
        if query.filter is not None:
            check(query.filter, columns)
        return columns

    def schema(self, query: Query) -> pa.Schema:
        """The schema of every batch ``batches(query)`` yields."""
        stored = self.arrow_schema(query.table)
        fields = []
        for name in query.columns:
            mask = query.masks.get(name)
            masked_to_text = mask is not None and mask.kind in (MaskKind.REDACT, MaskKind.HASH)
            fields.append(
                pa.field(name, pa.string() if masked_to_text else stored.field(name).type)
            )
        return pa.schema(fields)

    def count(self, query: Query) -> int:
        """How many rows ``batches(query)`` would yield."""
        self.validate_query(query)
        return self._count(query)

    def batches(self, query: Query, batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        """The permitted slice as record batches of at most ``batch_rows`` rows, schema fixed."""
        if batch_rows <= 0:
            raise QueryError(f"batch_rows must be positive, got {batch_rows}")
        self.validate_query(query)
        out = self.schema(query)
        stored = self.arrow_schema(query.table)
        raw = pa.schema(
            [stored.field(n) if _hashed(query, n) else out.field(n) for n in query.columns]
        )
        hashed = [(i, query.masks[n]) for i, n in enumerate(query.columns) if _hashed(query, n)]
        return self._stream(query, raw, out, hashed, batch_rows)

    def _stream(
        self,
        query: Query,
        raw: pa.Schema,
        out: pa.Schema,
        hashed: list[tuple[int, Mask]],
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        sent = False
        for batch in self._batches(query, raw, batch_rows):
            batch = _conform(batch, raw)
            for index, mask in hashed:
                batch = batch.set_column(
                    index, out.field(index), hash_column(batch.column(index), mask.key)
                )
            for start in range(0, batch.num_rows, batch_rows):
                sent = True
                yield batch.slice(start, batch_rows)
        if not sent:
            yield pa.RecordBatch.from_pylist([], schema=out)

    def validate(self, dataset: Dataset) -> None:
        """Check that the dataset's declared columns exist in the store with compatible types."""
        try:
            actual = self.columns(dataset.location.table)
        except TableError as exc:
            raise SchemaMismatchError(dataset.id, [str(exc)]) from exc
        problems = []
        for column in dataset.columns:
            found = actual.get(column.name)
            if found is None:
                problems.append(
                    f"column {column.name!r} is missing from {dataset.location.table!r}"
                )
            elif column.type not in _COMPATIBLE.get(found, {found}):
                declared, stored = column.type.value, found.value
                problems.append(f"column {column.name!r} is declared {declared}, stored {stored}")
        if problems:
            raise SchemaMismatchError(dataset.id, problems)


def _hashed(query: Query, name: str) -> bool:
    mask = query.masks.get(name)
    return mask is not None and mask.kind is MaskKind.HASH


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    # The common case (the store already returned the declared types) costs one comparison.
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    if batch.num_columns != len(schema):
        raise ConnectorError(f"store returned {batch.num_columns} columns, expected {len(schema)}")
    arrays = [
        col if col.type == field.type else pc.cast(col, field.type)
        for col, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def open_store(kind: str, target: str, base_dir: Path | None = None, **options: Any) -> Connector:
    """A connector for a store: ``sql`` (SQLAlchemy URL), ``files`` (folder), ``optimade`` (URL),
    ``spark`` (Spark Connect URL).

    ``options`` go to the connector (``scope`` for sql, ``network`` for optimade, ``schemas``
    and ``tables`` for spark).
    """
    if kind == "sql":
        from connectors.sql import SQLConnector

        return SQLConnector(target, base_dir=base_dir, **options)
    if kind == "files":
        from connectors.files import FilesConnector

        root = Path(target)
        if not root.is_absolute() and base_dir is not None:
            root = base_dir / root
        return FilesConnector(root)
    if kind == "optimade":
        from connectors.optimade import OptimadeConnector

        return OptimadeConnector(target, **options)
    if kind == "spark":
        from connectors.spark import SparkConnector

        return SparkConnector(target, **options)
    raise ConnectorError(
        f"unknown store kind {kind!r}; expected 'sql', 'files', 'optimade' or 'spark'"
    )
