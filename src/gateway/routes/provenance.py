"""Manifests of released slices."""

from __future__ import annotations

from fastapi import APIRouter

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
