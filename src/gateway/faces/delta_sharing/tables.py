"""A shared table's version, metadata and files, each through the slice service.

The metadata's schema is that of the slice the recipient would get (an empty slice is opened to
learn it, so withheld columns are absent and masked ones have their masked type); a query opens
the slice itself, with the hints that fit pushed into the store's query and ``limitHint`` as its
limit, and writes it as one Parquet file behind a signed URL (``files``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.filterparser import unparse
from connectors.filters import Filter
from gateway.errors import BadRequest, Forbidden
from gateway.faces.delta_sharing import files, hints, shares
from gateway.formats import Format
from gateway.slices import SliceRequest, open_slice
from policies.principals import Principal

if TYPE_CHECKING:
    from connectors.datasets import Dataset
    from gateway.config import ShareConfig
    from gateway.node import Node

__all__ = ["QueryBody", "Table", "metadata", "profile", "query", "spark_schema", "version"]


@dataclass(frozen=True)
class Table:
    """The path of a table in a share."""

    share: str
    schema: str
    name: str


@dataclass(frozen=True)
class QueryBody:
    """The parts of a query request this server honours."""

    predicate_hints: tuple[str, ...] | None = None
    json_predicate_hints: str | None = None
    limit_hint: int | None = None
    version: int | None = None
    timestamp: str | None = None
    starting_version: int | None = None


def version(node: Node, principal: Principal, table: Table) -> int:
    """The table's version: the policy version, which is what changes what a recipient gets."""
    shares.table_for(node, principal, table.share, table.schema, table.name)
    return node.governance.version


def _spark_type(kind: pa.DataType) -> str | dict[str, Any]:
    if pa.types.is_dictionary(kind):
        return _spark_type(kind.value_type)
    if pa.types.is_int64(kind) or pa.types.is_uint32(kind):
        return "long"
    if pa.types.is_int32(kind) or pa.types.is_uint16(kind):
        return "integer"
    if pa.types.is_int16(kind) or pa.types.is_uint8(kind):
        return "short"
    if pa.types.is_int8(kind):
        return "byte"
    if pa.types.is_float64(kind):
        return "double"
    if pa.types.is_float32(kind) or pa.types.is_float16(kind):
        return "float"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "binary"
    return "string"


def spark_schema(schema: pa.Schema) -> str:
    """An Arrow schema as Delta's schemaString (Spark's struct type JSON)."""
    fields = [
        {"name": f.name, "type": _spark_type(f.type), "nullable": f.nullable, "metadata": {}}
        for f in schema
    ]
    return json.dumps({"type": "struct", "fields": fields})


def _metadata_line(node: Node, share: ShareConfig, dataset: Dataset, schema: pa.Schema) -> str:
    return json.dumps(
        {
            "metaData": {
                "id": str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"{node.public_url}/{share.name}/{dataset.name}")
                ),
                "name": dataset.name,
                "description": dataset.title,
                "format": {"provider": "parquet"},
                "schemaString": spark_schema(schema),
                "partitionColumns": [],
                "configuration": {},
            }
        }
    )


_PROTOCOL = json.dumps({"protocol": {"minReaderVersion": 1}})


def metadata(node: Node, principal: Principal, table: Table) -> tuple[int, Iterator[str]]:
    """The table's version and its protocol and metadata lines."""
    share, dataset = shares.table_for(node, principal, table.share, table.schema, table.name)
    req = SliceRequest(purpose=share.purpose, limit=0, format=Format.ARROW)
    opened = open_slice(node, principal, dataset.id, req)
    schema = pa.ipc.open_stream(b"".join(opened.chunks)).schema
    lines = [_PROTOCOL, _metadata_line(node, share, dataset, schema)]
    return node.governance.version, iter(lines)


def query(
    node: Node, principal: Principal, table: Table, body: QueryBody
) -> tuple[int, Iterator[str]]:
    """The table's version, and protocol, metadata and file lines: one signed Parquet file."""
    share, dataset = shares.table_for(node, principal, table.share, table.schema, table.name)
    current = node.governance.version
    if body.starting_version is not None:
        raise BadRequest("change data feed is not shared: startingVersion is not supported")
    if body.timestamp is not None or (body.version is not None and body.version != current):
        raise BadRequest(f"history is not shared: only the current version {current} can be read")
    if body.limit_hint is not None and body.limit_hint < 0:
        raise BadRequest("limitHint must be non-negative")
    columns = {c.name: c.type for c in dataset.columns}
    pushed, _skipped = hints.hints_filter(body.predicate_hints, body.json_predicate_hints, columns)
    files.sweep(node)
    opened = _open(node, principal, share, dataset, pushed, body.limit_hint)
    path = files.folder(node) / f"{opened.request_id}.parquet"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for chunk in opened.chunks:
            digest.update(chunk)
            out.write(chunk)
    meta = pq.read_metadata(path)
    grant = files.Grant(
        rid=opened.request_id,
        subject=principal.subject,
        institution=principal.institution,
        roles=tuple(sorted(principal.roles)),
        actor=principal.actor,
        dataset=dataset.id,
        purpose=share.purpose,
        columns=tuple(opened.manifest["query"]["columns"]),
        shape=files.shape_of_manifest(opened.manifest),
        query=hashlib.sha256(
            json.dumps(opened.manifest["query"], sort_keys=True).encode()
        ).hexdigest(),
        exp=int(time.time()) + files.URL_TTL_SECONDS,
        sha256=digest.hexdigest(),
        size=path.stat().st_size,
    )
    url = files.keep_grant(node, grant)
    stats = {"numRecords": meta.num_rows}
    file_line = {
        "file": {
            "url": url,
            "id": grant.sha256,
            "partitionValues": {},
            "size": grant.size,
            "stats": json.dumps(stats),
            "expirationTimestamp": grant.exp * 1000,
        }
    }
    schema = meta.schema.to_arrow_schema()
    lines = [_PROTOCOL, _metadata_line(node, share, dataset, schema), json.dumps(file_line)]
    return current, iter(lines)


def _open(
    node: Node,
    principal: Principal,
    share: ShareConfig,
    dataset: Dataset,
    pushed: Filter | None,
    limit: int | None,
) -> Any:
    req = SliceRequest(
        purpose=share.purpose,
        filter=unparse(pushed) if pushed is not None else None,
        limit=limit,
        format=Format.PARQUET,
    )
    try:
        return open_slice(node, principal, dataset.id, req)
    except Forbidden:
        if pushed is None:
            raise
        # A hint on a column withheld or masked from the recipient is skipped, as hints may be.
        return open_slice(node, principal, dataset.id, dataclasses.replace(req, filter=None))


def profile(node: Node, principal: Principal, token: str) -> dict[str, Any]:
    """A Delta Sharing profile file carrying the caller's own bearer token, until it expires."""
    out: dict[str, Any] = {
        "shareCredentialsVersion": 1,
        "endpoint": f"{node.public_url}/delta-sharing",
        "bearerToken": token,
    }
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        out["expirationTime"] = exp.isoformat().replace("+00:00", "Z")
    except (IndexError, ValueError, KeyError, TypeError):
        pass  # a token without a readable expiry: the profile has none either
    del principal  # authenticated by the dependency; the profile is only for its holder
    return out
