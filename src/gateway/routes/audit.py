"""Auditors: the verifiable log (checkpoints, proofs, events, exports) and lineage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from audit.search import EventFilter
from gateway import auditing
from gateway.deps import CurrentPrincipal, NodeDep
from gateway.errors import BadRequest, TooLarge
from gateway.schemas import RunBody
from gateway.witness import MAX_BODY

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


async def submission_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it outgrows a witness submission."""
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge(f"a checkpoint submission is at most {MAX_BODY} bytes")
        parts.append(chunk)
    return b"".join(parts)


@router.get(
    "/audit/checkpoint",
    summary="The log's signed tree head, with its witnesses' cosignatures",
    response_class=JSONResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def checkpoint(
    request: Request,
    node: NodeDep,
    _principal: CurrentPrincipal,
    format: Literal["json", "note"] | None = None,
) -> Response:
    """JSON (size, root, time, signature, the C2SP note, the log's vkey and fingerprint), or with
    ``format=note`` or ``Accept: text/plain`` the C2SP checkpoint note with cosignatures."""
    view = auditing.checkpoint(node)
    accept = request.headers.get("accept", "")
    if format == "note" or (format is None and accept.startswith("text/plain")):
        return PlainTextResponse(view["note"])
    return JSONResponse(view)


@router.get("/audit/witness", summary="This node's witness key and what it cosigned")
def witness(node: NodeDep) -> dict[str, Any]:
    """The witness name and C2SP vkey (pin it to count its cosignatures), and the latest
    checkpoint it cosigned for each peer log."""
    return auditing.witness_info(node)


@router.post(
    "/audit/witness/add-checkpoint",
    summary="Witness a peer's checkpoint (c2sp.org/tlog-witness)",
    response_class=PlainTextResponse,
    openapi_extra={"requestBody": {"content": {"text/plain": {}}, "required": True}},
)
async def add_checkpoint(
    body: Annotated[bytes, Depends(submission_body)], node: NodeDep
) -> Response:
    """``old <size>``, consistency proof lines, a blank line and the checkpoint note; answers
    a cosignature line, or 409 with the size last cosigned (``text/x.tlog.size``)."""
    answer = await auditing.add_checkpoint(node, body)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


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
    newest_first: Annotated[
        bool, Query(description="Newest first; next_cursor then leads to older events")
    ] = False,
) -> dict[str, Any]:
    """A page of events matching the filters; follow ``next_cursor`` for the next page."""
    return auditing.events(node, principal, filters, cursor, limit, newest_first=newest_first)


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


@router.get("/audit/report", summary="Where did a dataset go, with proofs (auditors)")
def report(
    node: NodeDep,
    principal: CurrentPrincipal,
    dataset: Annotated[str, Query(min_length=1, max_length=200)],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every decision, release and relay of the dataset and every model trained on it, each
    with an inclusion proof against one witnessed checkpoint (``matgate audit verify-report``)."""
    return auditing.report(node, principal, dataset, since, until)


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
    format: Literal["graph", "prov", "prov-n", "prov-xml", "prov-o", "openlineage"] = "graph",
) -> Any:
    """dataset -> slice -> principal -> run -> model, as a graph, W3C PROV (PROV-JSON, PROV-N,
    PROV-XML or PROV-O) or OpenLineage run events."""
    anchor = {"dataset": dataset, "principal_id": principal_id, "model": model}
    if format in auditing.PROV_TEXT:
        text, media = auditing.lineage_prov(node, principal, **anchor, fmt=format)
        return Response(text, media_type=media)
    return auditing.lineage(node, principal, **anchor, fmt=format)
