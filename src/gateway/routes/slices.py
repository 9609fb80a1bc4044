"""Pulling slices: the permitted rows and columns of a dataset, streamed (without a token, what
the policy grants ``public``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from gateway import service
from gateway.deps import OPTIONAL_AUTH, DatasetName, Institution, LaterPrincipal, NodeDep
from gateway.formats import Format
from gateway.openapi import errors
from gateway.schemas import SliceBody

router = APIRouter(tags=["slices"])

_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The slice, in the requested format; the manifest is at the Link header.",
        "content": {f.media_type: {} for f in Format},
    },
    **errors(400, 403, 404, 502, 503, 504),
}


@router.post(
    "/datasets/{institution}/{name}/slice",
    response_class=StreamingResponse,
    responses=_STREAM,
    openapi_extra=OPTIONAL_AUTH,
)
def post_slice(
    institution: Institution,
    name: DatasetName,
    body: SliceBody,
    node: NodeDep,
    principal: LaterPrincipal,
) -> Response:
    """Stream the permitted slice of a dataset for a declared purpose."""
    return service.stream_slice(node, principal.resolve(), f"{institution}/{name}", body)


@router.get(
    "/datasets/{institution}/{name}/slice",
    response_class=StreamingResponse,
    responses=_STREAM,
    openapi_extra=OPTIONAL_AUTH,
)
def get_slice(
    institution: Institution,
    name: DatasetName,
    node: NodeDep,
    principal: LaterPrincipal,
    purpose: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            description="Declared use, e.g. research, ml-training",
            examples=["research"],
        ),
    ],
    columns: Annotated[str | None, Query(max_length=20_000, description="Comma-separated")] = None,
    filter: Annotated[
        str | None,
        Query(
            max_length=20_000,
            description="OPTIMADE filter syntax",
            examples=["yield_strength_mpa > 900"],
        ),
    ] = None,
    order_by: Annotated[str | None, Query(max_length=2_000, description="Comma-separated")] = None,
    limit: Annotated[
        int | None, Query(ge=0, le=1_000_000_000, description="At most this many rows")
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000_000, description="Skip this many rows first")
    ] = 0,
    format: Annotated[Format, Query(description="Response format")] = Format.CSV,
) -> Response:
    """The same as the POST form, with query parameters (CSV by default, for browsers and curl)."""
    who = principal.resolve()
    body = SliceBody(
        purpose=purpose,
        columns=_split(columns),
        filter=filter,
        order_by=_split(order_by) or [],
        limit=limit,
        offset=offset,
        format=format,
    )
    return service.stream_slice(node, who, f"{institution}/{name}", body)


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]
