"""Auditors: the verifiable log (checkpoints, proofs, events, exports) and lineage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse

from audit.search import EventFilter
from gateway import auditing
from gateway.deps import CurrentPrincipal, NodeDep
from gateway.errors import BadRequest
from gateway.schemas import RunBody

router = APIRouter(tags=["audit"])
_MAX = 2**62


def event_filter(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    principal: Annotated[str | None, Query(max_length=300)] = None,
    institution: Annotated[str | None, Query(max_length=64)] = None,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    decision: Annotated[Literal["allow", "deny"] | None, Query()] = None,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=64, description="Event name")] = None,
) -> EventFilter:
    """Event filters from the query string (400 for a range no entry can fall in)."""
    try:
        return EventFilter(
            since=since,
            until=until,
            principal=principal,
            institution=institution,
            dataset=dataset,
            action=action,
            decision=decision,
            purpose=purpose,
            name=name,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


Filters = Annotated[EventFilter, Depends(event_filter)]


@router.get("/audit/checkpoint", summary="The log's signed tree head")
def checkpoint(node: NodeDep, _principal: CurrentPrincipal) -> dict[str, Any]:
    """Size, root hash, time and the node's Ed25519 signature (signed now if the log grew)."""
    return auditing.checkpoint(node)


@router.get("/audit/proof/inclusion", summary="Inclusion proof (RFC 6962)")
def inclusion(
    node: NodeDep,
    _principal: CurrentPrincipal,
    index: Annotated[int, Query(ge=0, le=_MAX)],
    size: Annotated[int | None, Query(ge=1, le=_MAX)] = None,
) -> dict[str, Any]:
    """Audit path from entry ``index`` to the root of the tree of ``size`` entries."""
    return auditing.inclusion(node, index, size)


@router.get("/audit/proof/consistency", summary="Consistency proof (RFC 6962)")
def consistency(
    node: NodeDep,
    _principal: CurrentPrincipal,
    first: Annotated[int, Query(alias="from", ge=0, le=_MAX)],
    second: Annotated[int | None, Query(alias="to", ge=0, le=_MAX)] = None,
) -> dict[str, Any]:
    """Proof that the log of ``from`` entries is a prefix of the log of ``to`` entries."""
    return auditing.consistency(node, first, second)


@router.get("/audit/events", summary="Events of this domain (auditors)")
def events(
    node: NodeDep,
    principal: CurrentPrincipal,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """A page of events matching the filters; follow ``next_cursor`` for the next page."""
    return auditing.events(node, principal, filters, cursor, limit)


@router.get("/audit/export", summary="Export events (auditors)", response_class=StreamingResponse)
def export(
    node: NodeDep,
    principal: CurrentPrincipal,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    """Matching events as JSON lines or CSV."""
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse(auditing.export(node, principal, filters, format), media_type=media)


@router.get(
    "/audit/bundle",
    summary="The whole log for offline verification",
    response_class=StreamingResponse,
)
def bundle(node: NodeDep, principal: CurrentPrincipal) -> StreamingResponse:
    """Entries, checkpoints and the node's keys, for ``matgate audit verify FILE``."""
    return StreamingResponse(auditing.bundle(node, principal), media_type="application/x-ndjson")


@router.get("/audit/verify", summary="Verify the live log (auditors)")
def verify(node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every entry against the hash chain and every checkpoint: which entry is wrong, if any."""
    return auditing.verify(node, principal)


@router.post(
    "/lineage/runs", status_code=status.HTTP_201_CREATED, summary="Register a training run"
)
def register_run(body: RunBody, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Link a model to the slices (signed manifests) it was trained on."""
    return auditing.register_run(node, principal, body)


@router.get("/lineage", summary="Lineage graph")
def lineage(
    node: NodeDep,
    principal: CurrentPrincipal,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    principal_id: Annotated[str | None, Query(alias="principal", max_length=300)] = None,
    model: Annotated[str | None, Query(max_length=300, description="name or name@version")] = None,
    format: Literal["graph", "prov", "openlineage"] = "graph",
) -> Any:
    """dataset -> slice -> principal -> run -> model, as a graph, W3C PROV-JSON or OpenLineage."""
    return auditing.lineage(
        node, principal, dataset=dataset, principal_id=principal_id, model=model, fmt=format
    )
