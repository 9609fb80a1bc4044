"""Stewards' pages: the policy as a table, adding and removing lines through a dry-run diff,
and the access matrix of a dataset. Each change goes through ``gateway.stewardship``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response
from pydantic import ValidationError

from gateway import stewardship
from gateway.console import views
from gateway.console.web import Context, context, error_page, redirect, render
from gateway.errors import BadRequest
from gateway.schemas import PolicyEdit
from policies.decisions import Action
from policies.errors import PolicyValidationError
from policies.lines import PolicyLine
from policies.principals import Principal

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]
FIELDS = ("subject", "dataset", "action", "purpose", "columns", "mask", "rows", "agreement")
Text = Annotated[str, Form(max_length=500)]


def _page(ctx: Context, status: int = 200, **values: Any) -> Response:
    principal = ctx.require_domain(Action.MANAGE)
    policy = stewardship.policy_lines(ctx.node, principal, ctx.node.institution)
    lines = [(s, json.dumps(s, sort_keys=True)) for s in policy["lines"]]
    values.setdefault("form", {})
    values.setdefault("errors", {})
    return render(
        ctx,
        "policy.html",
        status=status,
        policy=policy,
        lines=lines,
        actions=[a.value for a in Action],
        purposes=sorted(ctx.node.governance.purposes),
        datasets=ctx.node.catalog.names(ctx.node.institution, limit=views.SUGGESTIONS),
        **values,
    )


@router.get("/policy")
def policy(ctx: Ctx) -> Response:
    """The domain's policy lines and role assignments, with a form to add a line."""
    try:
        return _page(ctx)
    except Exception as exc:
        return error_page(ctx, exc)


def _line(form: dict[str, str], domain: str) -> dict[str, Any]:
    """A policy line from the form's fields (only the given ones)."""
    raw: dict[str, Any] = {"effect": form["effect"], "domain": domain, "action": form["action"]}
    raw[form["kind"]] = form["subject"]
    for key in ("dataset", "purpose"):
        raw[key] = form[key] or "*"
    columns = [c.strip() for c in form["columns"].split(",") if c.strip()]
    if columns:
        raw[form["columns_mode"]] = columns
        raw["mask"] = form["mask"] or "drop"
    for key in ("rows", "agreement"):
        if form[key].strip():
            raw[key] = form[key].strip()
    return raw


def _field_of(message: str) -> str:
    """The form field an error message is about (``subject`` when unsure)."""
    lowered = message.lower()
    for key, words in (
        ("columns", ("column", "selector", "keep", "withhold")),
        ("rows", ("row", "filter")),
        ("purpose", ("purpose",)),
        ("dataset", ("dataset",)),
        ("agreement", ("agreement",)),
        ("mask", ("mask",)),
        ("action", ("action",)),
    ):
        if any(w in lowered for w in words):
            return key
    return "subject"


def _errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        name = loc[0] if loc else _field_of(msg)
        name = {"role": "subject", "user": "subject", "institution": "subject", "keep": "columns",
                "withhold": "columns", "effect": "action"}.get(name, name)  # fmt: skip
        out.setdefault(name if name in FIELDS else _field_of(msg), msg)
    return out


@router.post("/policy/dry-run")
def dry_run(
    ctx: Ctx,
    effect: Annotated[str, Form(max_length=8)] = "allow",
    kind: Annotated[str, Form(max_length=16)] = "role",
    subject: Text = "",
    dataset: Text = "",
    action: Annotated[str, Form(max_length=16)] = "read",
    purpose: Text = "",
    columns_mode: Annotated[str, Form(max_length=16)] = "withhold",
    columns: Text = "",
    mask: Annotated[str, Form(max_length=16)] = "",
    rows: Text = "",
    agreement: Text = "",
    op: Annotated[str, Form(max_length=8)] = "add",
    line: Annotated[str, Form(max_length=5000)] = "",
    csrf: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """Validate a line to add (errors on its fields) or remove, and show what it would change."""
    form = {
        "effect": effect, "kind": kind, "subject": subject, "dataset": dataset, "action": action,
        "purpose": purpose, "columns_mode": columns_mode, "columns": columns, "mask": mask,
        "rows": rows, "agreement": agreement,
    }  # fmt: skip
    try:
        ctx.check_csrf(csrf)
        principal = ctx.require_domain(Action.MANAGE)
        domain = ctx.node.institution
        if op == "remove":
            raw = _loads(line)
        else:
            if kind not in ("role", "user", "institution") or columns_mode not in (
                "keep",
                "withhold",
            ):
                raise BadRequest("unknown subject kind or column mode")
            raw = _line(form, domain)
            try:
                raw = PolicyLine.model_validate(raw).model_dump(mode="json", exclude_defaults=True)
            except ValidationError as exc:
                return _page(ctx, 422, form=form, errors=_errors(exc))
        edit = PolicyEdit(add=[raw] if op == "add" else [], remove=[raw] if op == "remove" else [])
        try:
            diff = views.dry_run(ctx.node, principal, domain, edit)
        except PolicyValidationError as exc:
            if op == "remove":
                raise
            return _page(ctx, 422, form=form, errors={_field_of(str(exc)): str(exc)})
    except Exception as exc:
        return error_page(ctx, exc)
    return render(
        ctx, "dryrun.html", op=op, line=raw, line_json=json.dumps(raw, sort_keys=True), diff=diff
    )


def _loads(text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except ValueError:
        raise BadRequest("the line is not JSON") from None
    if not isinstance(raw, dict):
        raise BadRequest("the line is not an object")
    return raw


@router.post("/policy/apply")
def apply(
    ctx: Ctx,
    op: Annotated[str, Form(max_length=8)],
    line: Annotated[str, Form(max_length=5000)],
    csrf: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """Apply a line that was dry-run: validated again, versioned and recorded by the service."""
    try:
        ctx.check_csrf(csrf)
        principal = ctx.require_domain(Action.MANAGE)
        raw = _loads(line)
        if op not in ("add", "remove"):
            raise BadRequest("op is add or remove")
        edit = PolicyEdit(add=[raw] if op == "add" else [], remove=[raw] if op == "remove" else [])
        stewardship.edit_policy(ctx.node, principal, ctx.node.institution, edit)
    except Exception as exc:
        return error_page(ctx, exc)
    return redirect(ctx, "/console/policy")


@router.get("/matrix/{institution}/{name}")
def matrix(ctx: Ctx, institution: str, name: str) -> Response:
    """Roles and partner institutions x actions x purposes for one dataset."""
    try:
        principal = (
            ctx.require_domain(Action.MANAGE) if not ctx.can(Action.AUDIT) else ctx.require()
        )
        found, heads, rows = views.access_matrix(ctx.node, principal, f"{institution}/{name}")
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "matrix.html", ds=found, heads=heads, rows=rows)


def _steward_or_auditor(ctx: Context) -> Principal:
    """The principal if they may manage or audit this domain, else 403 (401 if signed out)."""
    return ctx.require() if ctx.can(Action.AUDIT) else ctx.require_domain(Action.MANAGE)


@router.get("/policy/history")
def history(ctx: Ctx) -> Response:
    """The domain's policy versions, newest first: who changed what, and when."""
    try:
        principal = _steward_or_auditor(ctx)
        found = stewardship.policy_history(ctx.node, principal, ctx.node.institution)
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "history.html", history=found)


@router.get("/agreements")
def agreements(ctx: Ctx) -> Response:
    """The domain's agreements and who accepted them, when, and until when."""
    try:
        principal = _steward_or_auditor(ctx)
        found = stewardship.domain_agreements(ctx.node, principal, ctx.node.institution)
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "agreements.html", agreements=found)
