"""The federated query: one filter over compatible datasets of several institutions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.deps import CurrentPrincipal, NodeDep
from gateway.federated_query import federated_query
from gateway.openapi import errors
from gateway.schemas import FederatedQueryBody

router = APIRouter(tags=["federation"])

_UNION: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The union with a `site` column; per-site status in the manifest.",
        "content": {"application/vnd.apache.arrow.stream": {}, "application/json": {}},
    },
    **errors(400, 403, 404, 502, 503, 504),
}


@router.post(
    "/federation/query",
    response_class=Response,
    responses=_UNION,
    summary="Query compatible datasets across sites",
)
async def query(body: FederatedQueryBody, node: NodeDep, principal: CurrentPrincipal) -> Response:
    """Union a dataset's permitted slices across sites, each site's status reported."""
    return await federated_query(node, principal, body)
