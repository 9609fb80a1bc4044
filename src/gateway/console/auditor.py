"""Auditors' pages: the event log newest first, an event with its inclusion proof checked,
the lineage graph drawn as SVG with click-through, and exports (the filtered log as JSON lines
or CSV, the whole log as a verification bundle, lineage as W3C PROV or OpenLineage), each
made by the same ``gateway.auditing`` function as on the API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from audit.search import EventFilter
from gateway import auditing
from gateway.console import views
from gateway.console.web import Context, context, error_page, headers, render
from policies.decisions import Action

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]
Short = Annotated[str | None, Query(max_length=300)]
PAGE = 50
KINDS = (
    "decision",
    "slice",
    "relay",
    "policy",
    "run",
    "dataset",
    "agreement",
    "auth-failure",
    "witness-refusal",
)


@router.get("/audit")
def events(
    ctx: Ctx,
    since: Short = None,
    until: Short = None,
    principal: Short = None,
    dataset: Short = None,
    decision: Annotated[Literal["allow", "deny", ""], Query()] = "",
    name: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
) -> Response:
    """The event log, newest first, filtered; ``before`` pages to older events."""
    values = {"since": since, "until": until, "principal": principal, "dataset": dataset,
              "decision": decision, "name": name}  # fmt: skip
    try:
        who = ctx.require_domain(Action.AUDIT)
        filters = _filters(values)
        found, older = views.events_newest_first(ctx.node, who, filters, before, limit)
    except Exception as exc:
        return error_page(ctx, exc)
    query = {k: v for k, v in values.items() if v} | ({"limit": limit} if limit != PAGE else {})
    filtered = {k: v for k, v in values.items() if v}
    return render(
        ctx, "audit.html", events=found, older=older, f=values, query=query, kinds=KINDS,
        filtered=filtered,
    )  # fmt: skip


def _filters(values: dict[str, str | None]) -> EventFilter:
    """The event filter of the page's fields (times in plain words)."""
    now = dt.datetime.now(dt.UTC)
    return EventFilter(
        since=views.parse_since(values["since"], now),
        until=views.parse_since(values["until"], now),
        principal=values["principal"] or None,
        dataset=values["dataset"] or None,
        decision=values["decision"] or None,
        name=values["name"] or None,
    )


def _download(ctx: Context, body: object, media: str, filename: str) -> Response:
    response = StreamingResponse(body, media_type=media)  # type: ignore[arg-type]
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return headers(response)


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


@router.get("/audit/export")
def export(
    ctx: Ctx,
    format: Literal["jsonl", "csv"] = "jsonl",
    since: Short = None,
    until: Short = None,
    principal: Short = None,
    dataset: Short = None,
    decision: Annotated[Literal["allow", "deny", ""], Query()] = "",
    name: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The events the filters match, oldest first, as JSON lines or CSV (a download)."""
    values = {"since": since, "until": until, "principal": principal, "dataset": dataset,
              "decision": decision, "name": name}  # fmt: skip
    try:
        who = ctx.require_domain(Action.AUDIT)
        body = auditing.export(ctx.node, who, _filters(values), format)
    except Exception as exc:
        return error_page(ctx, exc)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    name_ = f"matgate-events-{ctx.node.institution}-{_stamp()}.{format}"
    return _download(ctx, body, media, name_)


@router.get("/audit/bundle")
def bundle(ctx: Ctx) -> Response:
    """The whole log with its checkpoints and keys, for ``matgate audit verify FILE``."""
    try:
        body = auditing.bundle(ctx.node, ctx.require_domain(Action.AUDIT))
    except Exception as exc:
        return error_page(ctx, exc)
    name_ = f"matgate-audit-bundle-{ctx.node.institution}-{_stamp()}.jsonl"
    return _download(ctx, body, "application/x-ndjson", name_)


LineageFormat = Literal["prov", "prov-n", "prov-xml", "prov-o", "openlineage"]
SUFFIX = {"prov": "prov.json", "prov-n": "provn", "prov-xml": "prov.xml", "prov-o": "ttl",
          "openlineage": "openlineage.json"}  # fmt: skip


@router.get("/lineage/export")
def lineage_export(
    ctx: Ctx,
    format: LineageFormat = "prov",
    dataset: Short = None,
    principal: Short = None,
    model: Short = None,
) -> Response:
    """The lineage around one anchor as W3C PROV (JSON, N, XML, O) or OpenLineage events."""
    anchor = {"dataset": dataset or None, "principal_id": principal or None,
              "model": model or None}  # fmt: skip
    try:
        who = ctx.require()
        if format in auditing.PROV_TEXT:
            text, media = auditing.lineage_prov(ctx.node, who, **anchor, fmt=format)
            body: object = iter([text.encode()])
        else:
            found = auditing.lineage(ctx.node, who, **anchor, fmt=format)
            body, media = iter([JSONResponse(found).body]), "application/json"
    except Exception as exc:
        return error_page(ctx, exc)
    key = (dataset or principal or model or "lineage").replace("/", "-").replace(":", "-")
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in key)[:80]
    return _download(ctx, body, media, f"matgate-lineage-{safe}.{SUFFIX[format]}")


@router.get("/audit/health")
def health(ctx: Ctx) -> Response:
    """The log's latest checkpoint, its signature and witnesses, and the verifier's button."""
    try:
        ctx.require_domain(Action.AUDIT)
        head = auditing.checkpoint(ctx.node)
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "health.html", head=head, report=None)


@router.post("/audit/verify")
def verify(ctx: Ctx, csrf: Annotated[str | None, Form(max_length=128)] = None) -> Response:
    """Run the real verifier over the whole live log (every entry, every checkpoint)."""
    try:
        ctx.check_csrf(csrf)
        who = ctx.require_domain(Action.AUDIT)
        report = auditing.verify(ctx.node, who)
        head = auditing.checkpoint(ctx.node)
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "health.html", head=head, report=report)


@router.get("/audit/{index}")
def event(ctx: Ctx, index: Annotated[int, Path(ge=0, le=2**62)]) -> Response:
    """One event, and its inclusion proof verified against the signed checkpoint."""
    try:
        who = ctx.require_domain(Action.AUDIT)
        check = views.proof_check(ctx.node, who, index)
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "event.html", check=check, entry=check["entry"])


@router.get("/lineage")
def lineage(
    ctx: Ctx,
    dataset: Short = None,
    principal: Short = None,
    model: Short = None,
) -> Response:
    """The lineage graph around a dataset, a principal or a model, drawn server-side."""
    try:
        who = ctx.require()
        if not any((dataset, principal, model)):
            datasets = ctx.node.catalog.ids(limit=views.SUGGESTIONS)
            return render(ctx, "lineage.html", graph=None, anchor=None, datasets=datasets)
        graph = auditing.lineage(
            ctx.node, who, dataset=dataset or None, principal_id=principal or None,
            model=model or None, fmt="graph",
        )  # fmt: skip
    except Exception as exc:
        return error_page(ctx, exc)
    anchor = dataset or principal or model
    given = {"dataset": dataset, "principal": principal, "model": model}
    return render(
        ctx, "lineage.html", graph=views.lineage_svg(graph), anchor=anchor, raw=graph, datasets=[],
        anchor_query={k: v for k, v in given.items() if v},
    )  # fmt: skip
