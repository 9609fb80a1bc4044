"""Encoders that turn a stream of Arrow record batches into the bytes of one response format.

Each encoder yields byte chunks as batches arrive, so memory stays bounded by one batch, and
hashes what it hands out (SHA-256) on the way. Arrow IPC and Parquet files describe themselves:

- every field carries its catalog description in its metadata (``matgate.unit``,
  ``matgate.pspp``, ``matgate.sensitivity``, ``matgate.description``, ``matgate.type``, and
  ``matgate.mask`` when a policy masked it), is declared not null when the catalog says every
  row has a value (and no mask may blank it), and timestamps are UTC;
- the file is *sealed*: when the last row is written, the ``seal`` callback receives what was
  written so far (rows, bytes, SHA-256: the ``Content``) and returns the key-value metadata
  written last: the signed manifest. In Parquet it goes in the footer's key-value metadata
  (written at close, after every data page), so the hash covers every byte before the footer.
  An Arrow IPC stream cannot be amended at its start, where the schema (and an unsigned draft
  of the manifest, without rows or hash) stands: the seal is the custom metadata of a final
  zero-row record batch before the end-of-stream marker, and the hash covers every byte before
  that message. ``read_seal`` finds the seal of a file and the byte range it covers.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.datasets import Column

__all__ = [
    "Content",
    "Encoded",
    "Format",
    "Seal",
    "Sealed",
    "conform",
    "describe_fields",
    "encode",
    "read_seal",
]

MANIFEST_KEY = "matgate.manifest"
SIGNATURE_KEY = "matgate.signature"
COVERS_PARQUET = "parquet: every byte before the footer"
COVERS_ARROW = "arrow-ipc-stream: every byte before the final (seal) message"


class Format(StrEnum):
    """Slice response formats."""

    ARROW = "arrow"
    PARQUET = "parquet"
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"

    @property
    def media_type(self) -> str:
        """The Content-Type of this format."""
        return _MEDIA[self]

    @property
    def suffix(self) -> str:
        """A file name suffix for downloads."""
        return {Format.ARROW: ".arrows", Format.JSONL: ".jsonl"}.get(self, "." + self.value)

    @property
    def sealed(self) -> bool:
        """Whether files of this format carry their signed manifest."""
        return self in (Format.ARROW, Format.PARQUET)


_MEDIA = {
    Format.ARROW: "application/vnd.apache.arrow.stream",
    Format.PARQUET: "application/vnd.apache.parquet",
    Format.CSV: "text/csv; charset=utf-8",
    Format.JSON: "application/json",
    Format.JSONL: "application/x-ndjson",
}


@dataclass(frozen=True)
class Content:
    """What a file holds before its seal: rows, bytes, their SHA-256, and what the hash covers."""

    rows: int
    bytes: int
    sha256: str
    covers: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as the manifest carries it."""
        return {
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "covers": self.covers,
        }


Seal = Callable[[Content], Mapping[str, str]]


# -- self-describing fields ------------------------------------------------------------------


def describe_fields(
    schema: pa.Schema, columns: Sequence[Column], masks: Mapping[str, str]
) -> pa.Schema:
    """``schema`` with each field's catalog description, nullability and UTC timestamps."""
    by_name = {c.name: c for c in columns}
    fields = []
    for f in schema:
        col = by_name.get(f.name)
        kind = f.type
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp(kind.unit, "UTC")
        if col is None:
            fields.append(pa.field(f.name, kind, nullable=True))
            continue
        meta = {
            "matgate.type": col.type.value,
            "matgate.pspp": col.pspp.value,
            "matgate.sensitivity": col.sensitivity.value,
            "matgate.description": col.description,
        }
        if col.unit:
            meta["matgate.unit"] = col.unit
        if col.synthetic:
            meta["matgate.synthetic"] = "true"
        if f.name in masks:
            meta["matgate.mask"] = masks[f.name]
        nullable = col.nullable or f.name in masks
        fields.append(pa.field(f.name, kind, nullable=nullable, metadata=meta))
    return pa.schema(fields, metadata=schema.metadata)


class NotNullViolation(ValueError):
    """A field declared not null received a null."""


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` under ``schema`` (timestamps relabelled UTC); NotNullViolation on a null in a
    field declared not null."""
    if batch.schema.equals(schema, check_metadata=True):
        return batch
    arrays = []
    for array, f in zip(batch.columns, schema, strict=True):
        if array.type != f.type:
            array = array.cast(f.type)
        if not f.nullable and array.null_count:
            raise NotNullViolation(f"column {f.name!r} has nulls but is declared not null")
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def columns_of(schema: pa.Schema) -> list[dict[str, Any]]:
    """The fields of ``schema`` as the manifest lists them (so the seal covers them)."""
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "metadata": {k.decode(): v.decode() for k, v in (f.metadata or {}).items()},
        }
        for f in schema
    ]


# -- encoding --------------------------------------------------------------------------------


class Encoded:
    """The bytes of ``batches`` in ``fmt``, hashed and counted as they are handed out."""

    def __init__(
        self,
        fmt: Format,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        seal: Seal | None = None,
    ) -> None:
        self.format = fmt
        self.schema = schema
        self.rows = 0
        self.bytes = 0
        self.content: Content | None = None
        self._batches = batches
        self._seal = seal
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        """SHA-256 of every byte handed out so far."""
        return self._digest.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body():
            self._digest.update(chunk)
            self.bytes += len(chunk)
            yield chunk

    def _counted(self) -> Iterator[pa.RecordBatch]:
        for batch in self._batches:
            self.rows += batch.num_rows
            yield batch

    def _sealing(self, covers: str) -> Mapping[str, str] | None:
        """Called when every content byte has been handed out (and so hashed)."""
        self.content = Content(self.rows, self.bytes, self._digest.hexdigest(), covers)
        return self._seal(self.content) if self._seal is not None else None

    def _body(self) -> Iterator[bytes]:
        fmt, schema = self.format, self.schema
        if fmt in (Format.JSON, Format.JSONL):
            return _json(self._counted(), lines=fmt is Format.JSONL)
        if fmt is Format.ARROW and not any(pa.types.is_dictionary(f.type) for f in schema):
            return _arrow_stream(schema, self._counted(), self._sealing)
        return _with_writer(fmt, schema, self._counted(), self._sealing)


def encode(
    fmt: Format,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    seal: Seal | None = None,
) -> Iterator[bytes]:
    """Yield the bytes of ``batches`` (all of ``schema``) in format ``fmt``, sealed if asked."""
    return iter(Encoded(fmt, schema, batches, seal))


class _Sink(io.RawIOBase):
    """A write-only file that hands over what was written since the last ``drain``."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        """Always: this is a sink."""
        return True

    def write(self, data: Any) -> int:
        """Keep a copy of ``data`` until the next drain."""
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        """Everything written since the last drain."""
        out = b"".join(self._parts)
        self._parts.clear()
        return out


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
Sealing = Callable[[str], Mapping[str, str] | None]


def _arrow_stream(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], sealing: Sealing
) -> Iterator[bytes]:
    """The IPC stream, byte for byte what ``pa.ipc.new_stream`` writes, one message per chunk.

    Without dictionaries the stream is the schema message, one encapsulated message per batch,
    the seal (a zero-row batch with custom metadata) and the end-of-stream marker. Each batch
    is serialised in one call: no small writes through a Python file, one copy into the bytes
    handed on.
    """
    yield schema.serialize().to_pybytes()
    for batch in batches:
        if not batch.schema.equals(schema, check_metadata=False):
            raise pa.ArrowInvalid(
                f"Tried to write record batch with different schema: {batch.schema} vs {schema}"
            )
        yield batch.serialize().to_pybytes()
    seal = sealing(COVERS_ARROW)
    if seal is not None:
        yield _seal_message(schema, seal)
    yield _END_OF_STREAM


_EMPTY_ARRAYS: dict[pa.DataType, pa.Array] = {}


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for kind in schema.types:
        empty = _EMPTY_ARRAYS.get(kind)
        if empty is None:  # a few types only: one empty array each, made once
            empty = _EMPTY_ARRAYS[kind] = pa.array([], kind)
        arrays.append(empty)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _seal_message(schema: pa.Schema, seal: Mapping[str, str]) -> bytes:
    """The IPC message of a zero-row batch carrying ``seal`` as its custom metadata.

    A batch message does not depend on the schema's own metadata: the writer is given the
    schema without it (the stream's manifest draft), and its schema message is cut off."""
    schema = schema.remove_metadata()
    sink = _Sink()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(_empty(schema), custom_metadata=dict(seal))
        written = sink.drain()
    head = schema.serialize().to_pybytes()
    if not written.startswith(head):  # the writer always starts with the schema message
        raise pa.ArrowInvalid("unexpected IPC stream layout while sealing")
    return written[len(head) :]


def _open(fmt: Format, sink: _Sink, schema: pa.Schema) -> Any:
    if fmt is Format.ARROW:
        return pa.ipc.new_stream(sink, schema)
    if fmt is Format.PARQUET:
        # The footer alone says where the data ends; page indexes would come between the two.
        return pq.ParquetWriter(sink, schema, compression="zstd", write_page_index=False)
    return pacsv.CSVWriter(sink, schema)


def _with_writer(
    fmt: Format, schema: pa.Schema, batches: Iterable[pa.RecordBatch], sealing: Sealing
) -> Iterator[bytes]:
    sink = _Sink()
    if fmt is Format.PARQUET:
        # The schema's manifest is the seal's business (one manifest key in the footer).
        schema = schema.remove_metadata()
    writer = _open(fmt, sink, schema)
    last: pa.RecordBatch | None = None
    try:
        for batch in batches:
            last = batch
            if fmt is Format.PARQUET:
                writer.write_batch(batch, row_group_size=batch.num_rows or None)
            else:
                writer.write_batch(batch)
            chunk = sink.drain()
            if chunk:
                yield chunk
        if pending := sink.drain():  # what the writer wrote at open (no batch came)
            yield pending
        if fmt is Format.PARQUET:
            seal = sealing(COVERS_PARQUET)
            if seal is not None:
                writer.add_key_value_metadata(dict(seal))
        elif fmt is Format.ARROW:
            if last is None:  # the writer writes its schema and dictionaries with a batch
                last = _empty(schema)
                writer.write_batch(last)
                yield sink.drain()
            seal = sealing(COVERS_ARROW)
            if seal is not None:
                # Sliced from the last batch, the seal reuses its dictionaries: none follow.
                writer.write_batch(last.slice(0, 0), custom_metadata=dict(seal))
                yield sink.drain()
        else:
            sealing("all")
    finally:
        writer.close()
    yield sink.drain()


_JSON_OPTIONS = orjson.OPT_UTC_Z  # UTC timestamps end in "Z"; NaN and infinities are null


def _json(batches: Iterable[pa.RecordBatch], *, lines: bool) -> Iterator[bytes]:
    """Rows as JSON objects (one array, or one line each), rendered from Arrow's own values:
    integers stay integers, floats keep every digit, timestamps are RFC 3339, dates ISO 8601."""
    first = True
    if not lines:
        yield b"["
    for batch in batches:
        if batch.num_rows == 0:
            continue
        rows = batch.to_pylist()
        if lines:
            per_row = _JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE
            yield b"".join(orjson.dumps(row, option=per_row) for row in rows)
        else:
            body = orjson.dumps(rows, option=_JSON_OPTIONS)[1:-1]  # the rows, without [ ]
            yield body if first else b"," + body
        first = False
    if not lines:
        yield b"]"


# -- reading a seal back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    """What a sealed file says of itself, and what it holds."""

    format: Format
    seal: dict[str, str]
    covered: bytes
    rows: int
    schema: pa.Schema
    draft: str | None = None


def read_seal(data: bytes) -> Sealed:
    """The seal of a Parquet file or an Arrow IPC stream, the bytes it covers, and the rows and
    schema actually in it; ValueError if ``data`` is neither or carries no seal."""
    if data[:4] == b"PAR1" and data[-4:] == b"PAR1" and len(data) >= 12:
        return _parquet_seal(data)
    if data[:4] == b"\xff\xff\xff\xff":
        return _arrow_seal(data)
    raise ValueError("not a Parquet file or an Arrow IPC stream")


def _parquet_seal(data: bytes) -> Sealed:
    (footer,) = struct.unpack("<I", data[-8:-4])
    start = len(data) - 8 - footer
    if start < 4:
        raise ValueError("Parquet footer length is out of range")
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"unreadable Parquet file: {exc}") from exc
    meta = {k.decode(): v.decode() for k, v in (parquet.metadata.metadata or {}).items()}
    seal = {k: v for k, v in meta.items() if k in (MANIFEST_KEY, SIGNATURE_KEY)}
    if SIGNATURE_KEY not in seal:
        raise ValueError("the Parquet footer carries no signed manifest")
    return Sealed(Format.PARQUET, seal, data[:start], table.num_rows, table.schema)


def _arrow_seal(data: bytes) -> Sealed:
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        rows = 0
        seal: dict[str, str] = {}
        while True:
            try:
                batch, custom = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            if seal:
                raise ValueError("record batches follow the seal")
            found = {k.decode(): v.decode() for k, v in (custom or {}).items()}
            if SIGNATURE_KEY in found:
                if batch.num_rows:
                    raise ValueError("the seal message carries rows")
                seal = found
            rows += batch.num_rows
        schema = reader.schema
        covered = _covered_end(data)
    except pa.ArrowException as exc:
        raise ValueError(f"unreadable Arrow IPC stream: {exc}") from exc
    if not seal:
        raise ValueError("the Arrow stream carries no signed manifest")
    draft = (schema.metadata or {}).get(MANIFEST_KEY.encode())
    return Sealed(
        Format.ARROW, seal, data[:covered], rows, schema, draft.decode() if draft else None
    )


def _covered_end(data: bytes) -> int:
    """Where the sealed content of a stream ends: after the last record batch before the seal
    (the seal is the last record batch), or after the schema if the seal is the only one."""
    source = pa.BufferReader(pa.py_buffer(data))
    reader = pa.ipc.MessageReader.open_stream(source)
    ends: list[tuple[str, int]] = []
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        ends.append((message.type, source.tell()))
    batches = [end for kind, end in ends if kind == "record batch"]
    if not batches:
        raise ValueError("the Arrow stream has no record batch")
    return batches[-2] if len(batches) > 1 else ends[0][1]
