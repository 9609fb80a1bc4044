"""Liveness, readiness, metrics, keys and node information."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import service
from gateway.deps import NodeDep
from gateway.schemas import NodeInfo

router = APIRouter(tags=["node"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: {"description": "Not ready"}})
def readyz(node: NodeDep) -> dict[str, Any]:
    """The node database and the audit log answer."""
    return service.readiness(node)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/.well-known/jwks.json", summary="The node's public keys")
def jwks(node: NodeDep) -> dict[str, Any]:
    """JWK Set of the keys that sign this node's tokens, manifests and checkpoints."""
    return node.key.jwks()


@router.get("/info", summary="About this node", response_model=NodeInfo)
def info(node: NodeDep) -> NodeInfo:
    """Institution, URL and issuer of this node."""
    return service.node_info(node)
