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
from gateway.openapi import errors
from gateway.schemas import RunBody
from gateway.witness import MAX_BODY

router = APIRouter(tags=["audit"])
_MAX = 2**62
# c2sp.org/tlog-witness answers its errors in plain text (409: the size last cosigned).
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_WITNESS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The cosignature line", "content": _TEXT},
    400: {"description": "A malformed submission or proof", "content": _TEXT},
    403: {"description": "No known log key signed the checkpoint", "content": _TEXT},
    404: {"description": "An unknown log origin", "content": _TEXT},
    409: {
        "description": "Not the size last cosigned: the body says which it was",
        "content": {"text/x.tlog.size": {"schema": {"type": "string"}}},
    },
    413: {"description": "The submission exceeds its limit"},
    422: {"description": "The consistency proof does not verify", "content": _TEXT},
    503: {"description": "The witness state is unavailable", "content": _TEXT},
}


_SINCE = Query(description="Only entries at or after this instant (ISO 8601, with a time zone)")
_UNTIL = Query(description="Only entries before this instant (ISO 8601, with a time zone)")


def event_filter(
    since: Annotated[dt.datetime | None, _SINCE] = None,
    until: Annotated[dt.datetime | None, _UNTIL] = None,
    principal: Annotated[
        str | None, Query(max_length=300, description="Principal id (issuer namespace:subject)")
    ] = None,
    institution: Annotated[
        str | None, Query(max_length=64, description="The principal's home institution")
    ] = None,
    dataset: Annotated[
        str | None, Query(max_length=200, description="Dataset id, institution/name")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=32, description="discover, read, train, manage or audit")
    ] = None,
    decision: Annotated[
        Literal["allow", "deny"] | None, Query(description="Only allowed or only denied")
    ] = None,
    purpose: Annotated[str | None, Query(max_length=64, description="Declared purpose")] = None,
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
    format: Annotated[
        Literal["json", "note"] | None,
        Query(description="json, or the C2SP note (default: by the Accept header)"),
    ] = None,
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
    responses=_WITNESS_ANSWERS,
)
async def add_checkpoint(
    body: Annotated[bytes, Depends(submission_body)], node: NodeDep
) -> Response:
    """``old <size>``, consistency proof lines, a blank line and the checkpoint note; answers
    a cosignature line, or 409 with the size last cosigned (``text/x.tlog.size``)."""
    answer = await auditing.add_checkpoint(node, body)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


@router.get("/audit/proof/inclusion", summary="Inclusion proof (RFC 6962)", responses=errors(400))
def inclusion(
    node: NodeDep,
    _principal: CurrentPrincipal,
    index: Annotated[int, Query(ge=0, le=_MAX, description="The entry's index (from 0)")],
    size: Annotated[
        int | None, Query(ge=1, le=_MAX, description="Tree size (default: the latest)")
    ] = None,
) -> dict[str, Any]:
    """Audit path from entry ``index`` to the root of the tree of ``size`` entries."""
    return auditing.inclusion(node, index, size)


@router.get(
    "/audit/proof/consistency", summary="Consistency proof (RFC 6962)", responses=errors(400)
)
def consistency(
    node: NodeDep,
    _principal: CurrentPrincipal,
    first: Annotated[int, Query(alias="from", ge=0, le=_MAX, description="The older tree size")],
    second: Annotated[
        int | None,
        Query(alias="to", ge=0, le=_MAX, description="The newer tree size (default: latest)"),
    ] = None,
) -> dict[str, Any]:
    """Proof that the log of ``from`` entries is a prefix of the log of ``to`` entries."""
    return auditing.consistency(node, first, second)


@router.get("/audit/events", summary="Events of this domain (auditors)", responses=errors(400, 403))
def events(
    node: NodeDep,
    principal: CurrentPrincipal,
    filters: Filters,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Events per page")] = 100,
    newest_first: Annotated[
        bool, Query(description="Newest first; next_cursor then leads to older events")
    ] = False,
) -> dict[str, Any]:
    """A page of events matching the filters; follow ``next_cursor`` for the next page."""
    return auditing.events(node, principal, filters, cursor, limit, newest_first=newest_first)


@router.get(
    "/audit/export",
    summary="Export events (auditors)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
        **errors(400, 403),
    },
)
def export(
    node: NodeDep,
    principal: CurrentPrincipal,
    filters: Filters,
    format: Annotated[Literal["jsonl", "csv"], Query(description="JSON lines or CSV")] = "jsonl",
) -> StreamingResponse:
    """Matching events as JSON lines or CSV."""
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse(auditing.export(node, principal, filters, format), media_type=media)


@router.get(
    "/audit/bundle",
    summary="The whole log for offline verification",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, **errors(403)},
)
def bundle(node: NodeDep, principal: CurrentPrincipal) -> StreamingResponse:
    """Entries, checkpoints and the node's keys, for ``matgate audit verify FILE``."""
    return StreamingResponse(auditing.bundle(node, principal), media_type="application/x-ndjson")


@router.get(
    "/audit/report",
    summary="Where did a dataset go, with proofs (auditors)",
    responses=errors(400, 403),
)
def report(
    node: NodeDep,
    principal: CurrentPrincipal,
    dataset: Annotated[
        str,
        Query(min_length=1, max_length=200, description="Dataset id, institution/name"),
    ],
    since: Annotated[dt.datetime | None, _SINCE] = None,
    until: Annotated[dt.datetime | None, _UNTIL] = None,
) -> dict[str, Any]:
    """Every decision, release and relay of the dataset and every model trained on it, each
    with an inclusion proof against one witnessed checkpoint (``matgate audit verify-report``)."""
    return auditing.report(node, principal, dataset, since, until)


@router.get("/audit/verify", summary="Verify the live log (auditors)", responses=errors(403))
def verify(node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every entry against the hash chain and every checkpoint: which entry is wrong, if any."""
    return auditing.verify(node, principal)


@router.post(
    "/lineage/runs",
    status_code=status.HTTP_201_CREATED,
    summary="Register a training run",
    responses=errors(400, 403, 503),
)
def register_run(body: RunBody, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Link a model to the slices (signed manifests) it was trained on."""
    return auditing.register_run(node, principal, body)


@router.get("/lineage", summary="Lineage graph", responses=errors(400, 403, 404))
def lineage(
    node: NodeDep,
    principal: CurrentPrincipal,
    dataset: Annotated[
        str | None, Query(max_length=200, description="Start from this dataset")
    ] = None,
    principal_id: Annotated[
        str | None,
        Query(alias="principal", max_length=300, description="Start from this principal"),
    ] = None,
    model: Annotated[str | None, Query(max_length=300, description="name or name@version")] = None,
    format: Annotated[
        Literal["graph", "prov", "prov-n", "prov-xml", "prov-o", "openlineage"],
        Query(description="graph, W3C PROV (JSON, N, XML, O) or OpenLineage run events"),
    ] = "graph",
) -> Any:
    """dataset -> slice -> principal -> run -> model, as a graph, W3C PROV (PROV-JSON, PROV-N,
    PROV-XML or PROV-O) or OpenLineage run events."""
    anchor = {"dataset": dataset, "principal_id": principal_id, "model": model}
    if format in auditing.PROV_TEXT:
        text, media = auditing.lineage_prov(node, principal, **anchor, fmt=format)
        return Response(text, media_type=media)
    return auditing.lineage(node, principal, **anchor, fmt=format)
