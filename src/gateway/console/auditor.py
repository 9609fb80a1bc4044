"""Auditors' pages: the event log newest first, an event with its inclusion proof checked,
and the lineage graph drawn as SVG with click-through."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import Response

from audit.search import EventFilter
from gateway import auditing
from gateway.console import views
from gateway.console.web import Context, context, error_page, render
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
        now = dt.datetime.now(dt.UTC)
        filters = EventFilter(
            since=views.parse_since(since, now),
            until=views.parse_since(until, now),
            principal=principal or None,
            dataset=dataset or None,
            decision=decision or None,
            name=name or None,
        )
        found, older = views.events_newest_first(ctx.node, who, filters, before, limit)
    except Exception as exc:
        return error_page(ctx, exc)
    query = {k: v for k, v in values.items() if v} | ({"limit": limit} if limit != PAGE else {})
    return render(ctx, "audit.html", events=found, older=older, f=values, query=query, kinds=KINDS)


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
            datasets = [d.id for d in ctx.node.catalog.all()]
            return render(ctx, "lineage.html", graph=None, anchor=None, datasets=datasets)
        graph = auditing.lineage(
            ctx.node, who, dataset=dataset or None, principal_id=principal or None,
            model=model or None, fmt="graph",
        )  # fmt: skip
    except Exception as exc:
        return error_page(ctx, exc)
    anchor = dataset or principal or model
    return render(
        ctx, "lineage.html", graph=views.lineage_svg(graph), anchor=anchor, raw=graph, datasets=[]
    )
