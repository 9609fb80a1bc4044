"""The federated query: one filter over compatible datasets of several sites, unioned.

``POST /federation/query`` names datasets of this node and of its peers. Their catalog metadata
must agree on the columns asked for (name, PSPP role, type and unit), and their licences must
combine (``policies.licences.combine``: otherwise 422 with the reason). Then every site is asked
at once, local datasets through the same slice service as any pull, a peer's through the relay,
each owner deciding by its own policies; the answers are unioned with a ``site`` column. Each
dataset's status (``ok``, ``denied``, ``timeout``, ``unavailable``, ``error``) and ``complete``
are in the result's manifest (Arrow schema metadata, and ``/provenance/{id}`` once signed);
``require_all`` turns a partial result into an error. Results are held in memory to be unioned:
each part is bounded by the peers' size caps and the node's ``max_rows``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pyarrow as pa
from fastapi.responses import Response

from connectors.datasets import Column, Dataset
from connectors.errors import FilterError
from connectors.filterparser import check, parse
from gateway.access import dataset_for
from gateway.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayTimeout,
    MatgateError,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from gateway.federation import fan_out, fetch_dataset, is_remote, site_report
from gateway.formats import Format, encode
from gateway.node import Node
from gateway.observability import claim_request_id
from gateway.relay import open_relay
from gateway.schemas import FederatedQueryBody
from gateway.slices import MANIFEST_KEY, SliceRequest, keep, open_slice, released
from policies.errors import PolicyError
from policies.licences import combine
from policies.principals import Principal

__all__ = ["federated_query"]

SITE = "site"
_FAILURE = {"error": BadGateway, "timeout": GatewayTimeout, "unavailable": ServiceUnavailable}


async def federated_query(node: Node, principal: Principal, body: FederatedQueryBody) -> Response:
    """Run ``body`` across the sites (see the module docstring) and answer the union."""
    query_id = claim_request_id(lambda rid: released(node, rid))
    ids = list(dict.fromkeys(body.datasets))
    deadline = body.deadline or max((p.config.deadline for p in node.peers), default=30.0)
    end = time.monotonic() + deadline
    found = await fan_out({i: _metadata_job(node, principal, i) for i in ids}, deadline)
    # In the order asked, not the order answered, so that messages do not depend on timing.
    datasets: dict[str, Dataset] = {}
    for i in ids:
        answer = found.get(i)
        if isinstance(answer, Dataset):
            datasets[i] = answer
    sites = {i: site_report(found[i]) for i in ids if i in found}
    if not datasets:
        raise _failure(sites, "no site could describe its dataset")
    columns = compatible_columns(list(datasets.values()), body.columns)
    obligations = _obligations(node, list(datasets.values()))
    _check_filter(body.filter, columns)
    names = [c.name for c in columns]
    req = SliceRequest(
        purpose=body.purpose, columns=tuple(names), filter=body.filter, limit=body.limit
    )
    jobs = {i: _pull_job(node, principal, i, req) for i in datasets}
    pulled = await fan_out(jobs, max(0.05, end - time.monotonic()))
    parts: dict[str, pa.Table] = {}
    upstream: list[str] = []
    for ident, result in pulled.items():
        if isinstance(result, tuple):
            table, token = result
            problem = _unexpected_columns(table, names)
            if problem:
                sites[ident] = {"status": "error", "detail": problem}
                continue
            parts[ident] = table
            upstream.append(token)
            sites[ident] = {"status": "ok", "rows": table.num_rows}
        else:
            sites[ident] = site_report(result)
    for ident, report in sites.items():
        report["site"] = ident.split("/", 1)[0]
    complete = all(s["status"] == "ok" for s in sites.values())
    if body.require_all and not complete:
        raise _failure(sites, "require_all: not every site answered")
    table = union(parts, columns)
    manifest = {
        "id": query_id,
        "kind": "federated-query",
        "node": node.institution,
        "node_url": node.public_url,
        "dataset": "+".join(ids),
        "datasets": ids,
        "query": {"columns": [SITE, *names], "filter": body.filter, "limit": body.limit},
        "purpose": body.purpose,
        "principal": principal.id,
        "licences": sorted({d.license for d in datasets.values()}),
        "obligations": [o.to_dict() for o in obligations],
        "policy_version": 0,
        "sites": sites,
        "complete": complete,
        "format": body.format,
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "upstream": upstream,
    }
    content = _encode(table, manifest, body.format)
    final = {
        **manifest,
        "rows": table.num_rows,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    await anyio.to_thread.run_sync(keep, node, principal, final)
    media = Format.ARROW.media_type if body.format == "arrow" else Format.JSON.media_type
    headers = {
        "Matgate-Request-Id": query_id,
        "Matgate-Complete": "true" if complete else "false",
        "Link": f'</provenance/{query_id}>; rel="provenance"',
    }
    return Response(content, media_type=media, headers=headers)


def _metadata_job(
    node: Node, principal: Principal, dataset_id: str
) -> Callable[[], Awaitable[Dataset]]:
    async def job() -> Dataset:
        if dataset_id.split("/", 1)[0] == node.institution:
            return await anyio.to_thread.run_sync(dataset_for, node, principal, dataset_id)
        if not is_remote(node, dataset_id):
            raise NotFound(f"no peer holds {dataset_id!r}")
        return await fetch_dataset(node, principal, dataset_id)

    return job


def _pull_job(
    node: Node, principal: Principal, dataset_id: str, req: SliceRequest
) -> Callable[[], Awaitable[tuple[pa.Table, str]]]:
    async def job() -> tuple[pa.Table, str]:
        if is_remote(node, dataset_id):
            return await _pull_remote(node, principal, dataset_id, req)
        return await anyio.to_thread.run_sync(
            _pull_local, node, principal, dataset_id, req, abandon_on_cancel=True
        )

    return job


def _pull_local(
    node: Node, principal: Principal, dataset_id: str, req: SliceRequest
) -> tuple[pa.Table, str]:
    opened = open_slice(node, principal, dataset_id, req)
    content = b"".join(opened.chunks)  # runs the slice to its end: completion recorded, signed
    table = pa.ipc.open_stream(pa.py_buffer(content)).read_all()
    return table, str(node.provenance.get(opened.request_id)["signature"])


async def _pull_remote(
    node: Node, principal: Principal, dataset_id: str, req: SliceRequest
) -> tuple[pa.Table, str]:
    relay = await open_relay(node, principal, dataset_id, req)
    content = b"".join([chunk async for chunk in relay.chunks])
    found = await anyio.to_thread.run_sync(node.provenance.get, relay.request_id)
    if not found["manifest"].get("complete"):
        raise BadGateway(str(found["manifest"].get("error") or "relay incomplete"))
    try:
        table = pa.ipc.open_stream(pa.py_buffer(content)).read_all()
    except pa.ArrowInvalid as exc:
        raise BadGateway(f"peer of {dataset_id!r} sent an unreadable Arrow stream") from exc
    return table, str(found["signature"])


def compatible_columns(datasets: list[Dataset], wanted: list[str] | None) -> list[Column]:
    """The columns to union; Unprocessable naming the first disagreement between datasets."""
    first = datasets[0]
    names = wanted if wanted is not None else list(first.column_names)
    if len(set(names)) != len(names):
        raise BadRequest("columns are named more than once")
    out: list[Column] = []
    for name in names:
        found = {}
        for ds in datasets:
            try:
                found[ds.id] = ds.column(name)
            except KeyError:
                raise Unprocessable(f"{ds.id} has no column {name!r}") from None
        ref = found[first.id]
        for ident, col in found.items():
            for attr in ("pspp", "type", "unit"):
                if getattr(col, attr) != getattr(ref, attr):
                    raise Unprocessable(
                        f"column {name!r} is not compatible: {attr} {getattr(ref, attr)!s} in "
                        f"{first.id} but {getattr(col, attr)!s} in {ident}"
                    )
        out.append(ref)
    if wanted is None:
        for ds in datasets[1:]:
            extra = sorted(set(ds.column_names) - set(names))
            if extra:
                raise Unprocessable(
                    f"{ds.id} has columns {first.id} lacks ({', '.join(extra)}); name the columns"
                )
    return out


def _obligations(node: Node, datasets: list[Dataset]) -> tuple[Any, ...]:
    try:
        licences = [node.governance.licences.get(d.license) for d in datasets]
        citations = {d.license: d.citation or d.id for d in datasets}
        return combine(licences, citations)
    except PolicyError as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        raise Unprocessable(f"these datasets cannot be combined: {detail}") from exc


def _check_filter(text: str | None, columns: list[Column]) -> None:
    if text is None or not text.strip():
        return
    try:
        check(parse(text), {c.name: c.type for c in columns})
    except FilterError as exc:
        raise BadRequest(str(exc), position=exc.position, filter=text) from exc


def _unexpected_columns(table: pa.Table, names: list[str]) -> str:
    extra = sorted(set(table.column_names) - set(names))
    return f"the site returned columns not asked for: {', '.join(extra)}" if extra else ""


def union(parts: dict[str, pa.Table], columns: list[Column]) -> pa.Table:
    """The parts one below the other, with a ``site`` column; withheld columns are null."""
    names = [c.name for c in columns]
    types: dict[str, pa.DataType] = {}
    for name in names:
        kinds = {t.schema.field(name).type for t in parts.values() if name in t.column_names}
        kinds.discard(pa.null())
        # A column masked at one site (hashed text) and clear at another is unioned as text.
        types[name] = kinds.pop() if len(kinds) == 1 else pa.string()
    schema = pa.schema([pa.field(SITE, pa.dictionary(pa.int32(), pa.string()))])
    schema = pa.schema([*schema, *(pa.field(n, types[n]) for n in names)])
    tables = []
    for ident, table in parts.items():
        n = table.num_rows
        site = pa.DictionaryArray.from_arrays(
            pa.array([0] * n, pa.int32()), pa.array([ident.split("/", 1)[0]])
        )
        arrays: list[Any] = [site]
        for name in names:
            if name in table.column_names:
                arrays.append(table.column(name).cast(types[name]))
            else:
                arrays.append(pa.nulls(n, types[name]))
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables).unify_dictionaries()


def _encode(table: pa.Table, manifest: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        body = {
            "id": manifest["id"],
            "complete": manifest["complete"],
            "sites": manifest["sites"],
            "obligations": manifest["obligations"],
            "columns": table.column_names,
            "count": table.num_rows,
            "rows": table.to_pylist(),
        }
        return json.dumps(body, default=str).encode()
    schema = table.schema.with_metadata({MANIFEST_KEY: json.dumps(manifest).encode()})
    batches = table.cast(schema).to_batches(max_chunksize=65536)
    return b"".join(encode(Format.ARROW, schema, batches))


def _failure(sites: dict[str, dict[str, Any]], why: str) -> MatgateError:
    """The error of a query that cannot be answered, with every site's status."""
    statuses = {s["status"] for s in sites.values()}
    for status, cls in _FAILURE.items():
        if status in statuses:
            return cls(why, sites=sites)
    return Forbidden(why, sites=sites)
