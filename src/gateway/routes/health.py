"""Liveness, readiness, metrics, keys and node information."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import observability, service
from gateway.deps import NodeDep
from gateway.openapi import errors
from gateway.schemas import NodeInfo

router = APIRouter(tags=["node"])
_scraper = HTTPBearer(
    auto_error=False, description="The scraper token, or a JWT of an auditor or operator."
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_scraper)]


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    responses={503: {"description": "Not ready: the node database or the audit log fails"}},
)
def readyz(node: NodeDep) -> dict[str, Any]:
    """The node database and the audit log answer."""
    return service.readiness(node)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"},
        **errors(403, 404),
    },
)
def metrics(request: Request, node: NodeDep, credentials: Credentials) -> Response:
    """Prometheus text exposition, for auditors, operators and the configured scraper token."""
    token = credentials.credentials if credentials is not None else None
    source = request.client.host if request.client else "unknown"
    text = observability.exposition(node, request.app.state.metrics, token, source=source)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json", summary="The node's public keys")
def jwks(node: NodeDep) -> dict[str, Any]:
    """JWK Set of the keys that sign this node's tokens, manifests and checkpoints."""
    return node.key.jwks()


@router.get("/info", summary="About this node", response_model=NodeInfo)
def info(node: NodeDep) -> NodeInfo:
    """Institution, URL and issuer of this node."""
    return service.node_info(node)
