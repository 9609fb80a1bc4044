"""Stewards register a dataset from a store table: the node reads the table's columns, the
steward labels them (PSPP role, unit, sensitivity), and ``service.register_dataset`` (as on the
API) checks the schema against the store and records the registration."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from connectors.datasets import Dataset, PSPPRole, Sensitivity
from connectors.errors import ConnectorError
from gateway import service
from gateway.console.web import Context, context, error_page, redirect, render
from gateway.errors import BadRequest, MatgateError
from policies.decisions import Action
from policies.errors import PolicyError

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]
META = ("name", "title", "description", "creators", "keywords", "license", "version", "citation")
MAX_FIELDS = 8 * 2000  # seven fields per column, a few thousand columns at most
LIST_FIELDS = ("creators", "keywords")


def _page(ctx: Context, status: int = 200, **values: Any) -> Response:
    ctx.require_domain(Action.MANAGE)
    values.setdefault("form", {})
    values.setdefault("errors", {})
    values.setdefault("columns", [])
    return render(
        ctx,
        "register.html",
        status=status,
        stores=sorted(ctx.node.config.stores),
        licences=sorted(ctx.node.governance.licences.ids()),
        roles=[r.value for r in PSPPRole],
        sensitivities=[s.value for s in Sensitivity],
        **values,
    )


@router.get("/register")
def register_form(
    ctx: Ctx,
    store: Annotated[str, Query(max_length=64)] = "",
    table: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    """Pick a store and a table; the node reads the table's columns for the steward to label."""
    form = {"store": store, "table": table}
    try:
        principal = ctx.require_domain(Action.MANAGE)
        if not store or not table:
            return _page(ctx, form=form)
        try:
            found = service.table_columns(ctx.node, principal, store, table)
        except (ConnectorError, MatgateError) as exc:
            if isinstance(exc, MatgateError) and exc.status not in (404, 422):
                raise
            field = "store" if store not in ctx.node.config.stores else "table"
            return _page(ctx, 422, form=form, errors={field: _detail(exc)})
    except Exception as exc:
        return error_page(ctx, exc)
    columns = [c | {"include": True} for c in found["columns"]]
    return _page(ctx, form=form | {"name": _slug(table)}, columns=columns)


def _slug(table: str) -> str:
    """A suggested dataset name for a table (the steward may change it)."""
    base = table.rpartition("/")[2].rpartition(".")[0] or table.rpartition(".")[2]
    return "".join(c if c.isalnum() else "-" for c in base.lower()).strip("-")[:64]


def _detail(exc: Exception) -> str:
    return str(getattr(exc, "detail", None) or exc)


@router.post("/register")
async def register(ctx: Ctx, request: Request) -> Response:
    """Validate the labelled schema (errors on their fields) and register the dataset."""
    raw = await request.form(max_fields=MAX_FIELDS)
    form = {k: v for k, v in raw.items() if isinstance(v, str) and len(v) <= 50_000}
    try:
        ctx.check_csrf(form.get("csrf"))
        principal = ctx.require_domain(Action.MANAGE)
        columns = _columns(form)
        body = _body(ctx, form, columns)
        try:
            dataset = Dataset.model_validate(body)
        except ValidationError as exc:
            return _page(ctx, 422, form=form, columns=columns, errors=_errors(exc, columns))
        try:
            service.register_dataset(ctx.node, principal, dataset)
        except (PolicyError, MatgateError) as exc:
            if exc.status not in (409, 422):
                raise
            field = {409: "name"}.get(exc.status) or _field_of(_detail(exc))
            errors = {field: _detail(exc)}
            return _page(ctx, exc.status, form=form, columns=columns, errors=errors)
    except Exception as exc:
        return error_page(ctx, exc)
    return redirect(ctx, f"/console/datasets/{quote(dataset.institution)}/{quote(dataset.name)}")


def _columns(form: dict[str, str]) -> list[dict[str, Any]]:
    """The columns as the form sent them, in order (``c0_name``, ``c0_pspp``, ...)."""
    out = []
    for i in range(MAX_FIELDS // 7):
        name = form.get(f"c{i}_name")
        if name is None:
            break
        out.append({
            "name": name,
            "type": form.get(f"c{i}_type", ""),
            "include": form.get(f"c{i}_include") == "on",
            "pspp": form.get(f"c{i}_pspp", ""),
            "unit": form.get(f"c{i}_unit", ""),
            "sensitivity": form.get(f"c{i}_sensitivity", "public"),
            "description": form.get(f"c{i}_description", ""),
        })  # fmt: skip
    if not out:
        raise BadRequest("no columns: read the table's schema first")
    return out


def _body(ctx: Context, form: dict[str, str], columns: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"institution": ctx.node.institution}
    for key in META:
        value = form.get(key, "").strip()
        if key in LIST_FIELDS:
            body[key] = [v.strip() for v in value.split(";") if v.strip()]
        elif value or key in ("name", "title", "license"):
            body[key] = value
    body["location"] = {"store": form.get("store", ""), "table": form.get("table", "")}
    body["columns"] = [
        {k: c[k] for k in ("name", "type", "pspp", "sensitivity", "description")}
        | ({"unit": c["unit"].strip()} if c["unit"].strip() else {})
        for c in columns
        if c["include"]
    ]
    return body


def _errors(exc: ValidationError, columns: list[dict[str, Any]]) -> dict[str, str]:
    """Each error on its field: ``name``, ``license``, ..., or ``c3_unit`` for a column's."""
    included = [i for i, c in enumerate(columns) if c["include"]]
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if len(loc) >= 3 and loc[0] == "columns" and loc[1].isdigit():
            field = f"c{included[int(loc[1])]}_{loc[2]}"
        elif loc and loc[0] in (*META, "location"):
            field = loc[0] if loc[0] != "location" else "table"
        else:
            field = "columns"
        out.setdefault(field, msg)
    return out


def _field_of(message: str) -> str:
    lowered = message.lower()
    if "licen" in lowered:
        return "license"
    if "column" in lowered or "schema" in lowered:
        return "columns"
    return "name"
