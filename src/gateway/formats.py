"""Encoders that turn a stream of Arrow record batches into the bytes of one response format.

Each encoder yields byte chunks as batches arrive, so memory stays bounded by one batch; the
manifest rides in the schema metadata where the format has one (Arrow IPC, Parquet).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["Format", "encode"]


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


_MEDIA = {
    Format.ARROW: "application/vnd.apache.arrow.stream",
    Format.PARQUET: "application/vnd.apache.parquet",
    Format.CSV: "text/csv; charset=utf-8",
    Format.JSON: "application/json",
    Format.JSONL: "application/x-ndjson",
}


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


def encode(fmt: Format, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """Yield the bytes of ``batches`` (all of ``schema``) in format ``fmt``."""
    if fmt in (Format.JSON, Format.JSONL):
        return _json(batches, lines=fmt is Format.JSONL)
    if fmt is Format.ARROW and not any(pa.types.is_dictionary(f.type) for f in schema):
        return _arrow_stream(schema, batches)
    return _with_writer(fmt, schema, batches)


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The IPC stream, byte for byte what ``pa.ipc.new_stream`` writes, one message per chunk.

    Without dictionaries the stream is the schema message, one encapsulated message per batch
    and the end-of-stream marker. Each batch is serialised in one call: no small writes
    through a Python file, one copy into the bytes handed on.
    """
    yield schema.serialize().to_pybytes()
    for batch in batches:
        if not batch.schema.equals(schema, check_metadata=False):
            raise pa.ArrowInvalid(
                f"Tried to write record batch with different schema: {batch.schema} vs {schema}"
            )
        yield batch.serialize().to_pybytes()
    yield _END_OF_STREAM


def _open(fmt: Format, sink: _Sink, schema: pa.Schema) -> Any:
    if fmt is Format.ARROW:
        return pa.ipc.new_stream(sink, schema)
    if fmt is Format.PARQUET:
        return pq.ParquetWriter(sink, schema, compression="zstd")
    return pacsv.CSVWriter(sink, schema)


def _with_writer(
    fmt: Format, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> Iterator[bytes]:
    sink = _Sink()
    writer = _open(fmt, sink, schema)
    try:
        for batch in batches:
            if fmt is Format.PARQUET:
                writer.write_batch(batch, row_group_size=batch.num_rows or None)
            else:
                writer.write_batch(batch)
            chunk = sink.drain()
            if chunk:
                yield chunk
    finally:
        writer.close()
    yield sink.drain()


def _json(batches: Iterable[pa.RecordBatch], *, lines: bool) -> Iterator[bytes]:
    first = True
    if not lines:
        yield b"["
    for batch in batches:
        if batch.num_rows == 0:
            continue
        text = batch.to_pandas().to_json(orient="records", lines=True, date_format="iso")
        rows = text.strip("\n")
        if lines:
            yield (rows + "\n").encode()
        else:
            yield ((b"" if first else b",") + rows.replace("\n", ",").encode())
        first = False
    if not lines:
        yield b"]"
