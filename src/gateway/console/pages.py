"""Console pages for everyone: the home page, static assets, catalog search, a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import FileResponse, Response

from connectors.datasets import PSPPRole
from gateway import service, stewardship
from gateway.catalog import Criteria
from gateway.console import views
from gateway.console.web import HERE, Context, context, error_page, redirect, render
from gateway.errors import BadRequest, NotFound

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.is_file()}
MEDIA = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """A file of the console's own assets (no CDN)."""
    path: Path | None = STATIC.get(name)
    if path is None:
        raise NotFound(f"no asset {name!r}")
    response = FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"))
    response.headers.update({"Cache-Control": "public, max-age=3600"})
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("")
@router.get("/")
def home(ctx: Ctx) -> Response:
    """The catalog when signed in, else the sign-in page."""
    return redirect(ctx, "/console/catalog" if ctx.principal else "/console/signin")


@router.get("/catalog")
def catalog(
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=500)] = None,
    pspp: Annotated[str | None, Query(max_length=32)] = None,
    institution: Annotated[str | None, Query(max_length=64)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    license: Annotated[str | None, Query(max_length=128)] = None,
    federated: bool = False,
) -> Response:
    """Search what you may discover, here or across the federation."""
    try:
        principal = ctx.require()
        roles = (PSPPRole(pspp),) if pspp else ()
        criteria = Criteria(
            q or None, roles, None, unit or None, license or None, institution or None
        )
        page = service.catalog_page(ctx.node, principal, criteria, federated=federated)
    except ValueError:
        return error_page(ctx, BadRequest(f"no PSPP role {pspp!r}"))
    except Exception as exc:
        return error_page(ctx, exc)
    return render(
        ctx,
        "catalog.html",
        page=page,
        q=q or "",
        pspp=pspp or "",
        institution=institution or "",
        unit=unit or "",
        license=license or "",
        federated=federated,
        roles=[r.value for r in PSPPRole],
    )


@router.get("/datasets/{institution}/{name}")
def dataset(ctx: Ctx, institution: str, name: str) -> Response:
    """A dataset's FAIR metadata, schema, licence, and what you may do with it, and why."""
    try:
        principal = ctx.require()
        found = service.get_dataset(ctx.node, principal, f"{institution}/{name}")
        local = found.institution == ctx.node.institution
        decisions = views.dataset_decisions(ctx.node, principal, found) if local else []
        terms = stewardship.agreements(ctx.node, principal, found.id) if local else []
    except Exception as exc:
        return error_page(ctx, exc)
    trainable = [p for a, p, d in decisions if a == "train" and d["allowed"]]
    return render(
        ctx,
        "dataset.html",
        ds=found,
        decisions=decisions,
        local=local,
        trainable=trainable,
        agreements=terms,
    )


@router.post("/datasets/{institution}/{name}/accept")
def accept(
    ctx: Ctx,
    institution: str,
    name: str,
    agreement: Annotated[str, Form(max_length=64)],
    csrf: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """Accept a dataset's terms of use (recorded in the audit log), then back to the dataset."""
    try:
        ctx.check_csrf(csrf)
        principal = ctx.require()
        stewardship.accept_agreement(ctx.node, principal, agreement, for_institution=False)
    except Exception as exc:
        return error_page(ctx, exc)
    return redirect(ctx, f"/console/datasets/{quote(institution)}/{quote(name)}")
