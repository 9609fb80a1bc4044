"""Manifests of released slices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway import service
from gateway.deps import CurrentPrincipal, NodeDep, RequestId
from gateway.openapi import errors
from gateway.schemas import Provenance

router = APIRouter(tags=["provenance"])


@router.get(
    "/provenance/{request_id}",
    response_model=Provenance,
    summary="A slice's manifest",
    responses=errors(403, 404),
)
def get_provenance(request_id: RequestId, node: NodeDep, principal: CurrentPrincipal) -> Provenance:
    """The signed manifest of a slice you received (or, as an auditor, of your domain)."""
    return service.provenance(node, principal, request_id)


@router.get(
    "/provenance",
    summary="Your slices and their manifests, signatures checked",
    responses=errors(503),
)
def list_provenance(
    node: NodeDep,
    principal: CurrentPrincipal,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many slices, newest first.")
    ] = 100,
) -> list[dict[str, Any]]:
    """The slices this node released to you, newest first, each manifest's signature checked
    against the node's keys (``signature_ok``; ``problem`` says why one does not verify)."""
    return service.releases(node, principal, limit)
