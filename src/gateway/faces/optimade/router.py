"""The OPTIMADE routes: ``/optimade`` and its versioned twin ``/optimade/v1``.

Each route parses, calls one function of ``queries``, and answers JSON:API; matgate's errors
become OPTIMADE error documents with the same status. Anonymous callers get what ``public`` may
read; a bad token is still a 401.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from gateway.deps import MaybePrincipal, NodeDep
from gateway.errors import MatgateError
from gateway.faces.optimade import queries
from gateway.node import Node

__all__ = ["router"]

MEDIA = "application/vnd.api+json"
_core = APIRouter()
router = APIRouter(tags=["optimade"], include_in_schema=False)


def _where(node: Node, request: Request, prefix_end: int) -> queries.Where:
    path = request.url.path
    return queries.Where(
        base=node.public_url + path[:prefix_end], path=path[prefix_end:], query=request.url.query
    )


def _answer(
    node: Node, request: Request, work: Callable[[queries.Where], dict[str, Any]]
) -> JSONResponse:
    path = request.url.path
    end = len("/optimade/v1") if path.startswith("/optimade/v1/") else len("/optimade")
    where = _where(node, request, end)
    try:
        return JSONResponse(work(where), media_type=MEDIA)
    except MatgateError as exc:
        body = queries.error_body(node, where, exc.status, exc.title, exc.detail)
        return JSONResponse(body, status_code=exc.status, media_type=MEDIA)
    except ModuleNotFoundError as exc:  # the optional extra is not installed on this node
        detail = f"this node serves no OPTIMADE API: install matgate[optimade] ({exc.name})"
        body = queries.error_body(node, where, 501, "Not Implemented", detail)
        return JSONResponse(body, status_code=501, media_type=MEDIA)


@_core.get("/info")
def get_info(request: Request, node: NodeDep) -> JSONResponse:
    """What this OPTIMADE API serves."""
    return _answer(node, request, lambda w: queries.info(node, w))


@_core.get("/info/{entry}")
def get_entry_info(
    entry: str, request: Request, node: NodeDep, principal: MaybePrincipal
) -> JSONResponse:
    """The properties of an entry type, with the provider fields you may read."""
    return _answer(node, request, lambda w: queries.entry_info(node, principal, w, entry))


@_core.get("/links")
def get_links(request: Request, node: NodeDep) -> JSONResponse:
    """Links to other OPTIMADE databases (none)."""
    return _answer(node, request, lambda w: queries.links(node, w))


@_core.get("/structures")
def get_structures(request: Request, node: NodeDep, principal: MaybePrincipal) -> JSONResponse:
    """Structures matching the filter, from the mapped datasets you may read."""
    q = dict(request.query_params)
    return _answer(
        node, request, lambda w: queries.structures(node, principal, w, queries.params(q))
    )


@_core.get("/structures/{entry_id}")
def get_structure(
    entry_id: str, request: Request, node: NodeDep, principal: MaybePrincipal
) -> JSONResponse:
    """One structure, if you may read it."""
    q = dict(request.query_params)
    return _answer(
        node,
        request,
        lambda w: queries.structure(node, principal, w, entry_id, queries.params(q)),
    )


@router.get("/optimade/versions", response_class=PlainTextResponse)
def get_versions() -> PlainTextResponse:
    """The major versions served, as OPTIMADE's CSV."""
    return PlainTextResponse("version\n1\n", media_type="text/csv; header=present")


router.include_router(_core, prefix="/optimade")
router.include_router(_core, prefix="/optimade/v1")


@router.get("/optimade/{rest:path}")
def unknown(rest: str, request: Request, node: NodeDep) -> JSONResponse:
    """A version this API does not serve (553), or nothing (404)."""
    where = _where(node, request, len("/optimade"))
    if re.match(r"^v\d+(\.\d+){0,2}(/|$)", rest):
        detail = f"version {rest.split('/')[0]!r} is not served; see /optimade/versions"
        body = queries.error_body(node, where, 553, "Version Not Supported", detail)
        return JSONResponse(body, status_code=553, media_type=MEDIA)
    body = queries.error_body(node, where, 404, "Not found", f"no endpoint /{rest}")
    return JSONResponse(body, status_code=404, media_type=MEDIA)
