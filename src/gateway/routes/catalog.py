"""Catalog search, dataset metadata (JSON, or DCAT-AP as JSON-LD or Turtle), and registration.

``/catalog`` and ``/catalog/{institution}/{name}`` answer JSON unless the request asks for
``application/ld+json`` or ``text/turtle`` (``Accept``, or ``?format=jsonld|turtle``); the
DCAT-only paths (``/catalog.jsonld``, ``.../dcat``) answer JSON-LD unless Turtle is asked for.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from connectors.datasets import Dataset, PSPPRole
from gateway import service
from gateway.catalog_search import Criteria
from gateway.dcat import RdfFormat, negotiate
from gateway.deps import (
    OPTIONAL_AUTH,
    CurrentPrincipal,
    DatasetName,
    Institution,
    MaybePrincipal,
    NodeDep,
    StoreName,
)
from gateway.openapi import errors
from gateway.schemas import CatalogPage

router = APIRouter(tags=["catalog"])


def criteria(
    q: Annotated[str | None, Query(max_length=500, description="Words to find")] = None,
    pspp: Annotated[
        list[PSPPRole], Query(max_length=6, description="Has a column of this PSPP role")
    ] = [],  # noqa: B006
    column: Annotated[
        str | None, Query(max_length=128, description="Has a column whose name contains this")
    ] = None,
    unit: Annotated[
        str | None, Query(max_length=64, description="Has a column in this unit", examples=["MPa"])
    ] = None,
    license: Annotated[
        str | None, Query(max_length=128, description="SPDX licence id", examples=["CC-BY-4.0"])
    ] = None,
    institution: Annotated[
        str | None, Query(max_length=64, description="Owned by this institution")
    ] = None,
) -> Criteria:
    """Search criteria from the query string."""
    return Criteria(q, tuple(pspp), column, unit, license, institution)


_ACCEPT = Header(
    max_length=1000,
    description="application/json, application/ld+json or text/turtle (content negotiation)",
)
_FORMAT = Query(description="json, jsonld or turtle: overrides the Accept header", max_length=16)


def json_or_rdf(
    accept: Annotated[str | None, _ACCEPT] = None,
    format: Annotated[str | None, _FORMAT] = None,
) -> RdfFormat | None:
    """The DCAT serialisation asked for, or None for plain JSON (406 if none fits)."""
    return negotiate(accept, format)


def rdf(
    accept: Annotated[str | None, _ACCEPT] = None,
    format: Annotated[str | None, _FORMAT] = None,
) -> RdfFormat:
    """The DCAT serialisation asked for, JSON-LD by default (406 if none fits)."""
    return negotiate(accept, format, default=RdfFormat.JSONLD) or RdfFormat.JSONLD


JsonOrRdf = Annotated[RdfFormat | None, Depends(json_or_rdf)]
Rdf = Annotated[RdfFormat, Depends(rdf)]
_DCAT_MEDIA: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/ld+json": {"schema": {"type": "object"}},
            "text/turtle": {"schema": {"type": "string"}},
        },
        "description": "DCAT-AP 3 (JSON-LD or Turtle, by content negotiation)",
    },
    406: {"description": "None of the accepted media types can be served"},
}


def _rdf(body: bytes, fmt: RdfFormat) -> Response:
    return Response(body, media_type=fmt.media_type, headers={"Vary": "Accept"})


def _rdf_page(found: tuple[bytes, str | None], fmt: RdfFormat) -> Response:
    body, following = found
    response = _rdf(body, fmt)
    if following is not None:
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


def _listing_url(base: str, request: Request) -> str:
    """The URL of this listing at the node's public address ``base``, its cursor left out."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    query = urlencode(kept)
    return f"{base}{request.url.path}" + (f"?{query}" if query else "")


Cursor = Annotated[
    str | None, Query(max_length=8192, description="The `next` of the previous page")
]


@router.get(
    "/catalog",
    response_model=CatalogPage,
    summary="Search the catalog",
    responses={**_DCAT_MEDIA, **errors(400)},
    openapi_extra=OPTIONAL_AUTH,
)
def search_catalog(
    node: NodeDep,
    principal: MaybePrincipal,
    found: Annotated[Criteria, Depends(criteria)],
    fmt: JsonOrRdf,
    request: Request,
    federated: Annotated[
        bool, Query(description="Search the peers too; each site's status is in meta")
    ] = False,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Datasets per page")] = 100,
) -> Any:
    """A page of the datasets you may discover that match every given criterion, in the
    catalog's order (400 for a cursor of another search): JSON, or a DCAT-AP catalog whose
    ``hydra:view`` (and ``Link`` header) names the next page."""
    if fmt is not None:
        page = service.catalog_dcat(
            node, principal, found, fmt,
            page_url=_listing_url(node.public_url, request), cursor=cursor, limit=limit,
        )  # fmt: skip
        return _rdf_page(page, fmt)
    return service.catalog_page(
        node, principal, found, federated=federated, cursor=cursor, limit=limit
    )


@router.get(
    "/catalog.jsonld",
    summary="The catalog as DCAT-AP",
    responses={**_DCAT_MEDIA, **errors(400)},
    openapi_extra=OPTIONAL_AUTH,
)
def catalog_dcat(
    node: NodeDep,
    principal: MaybePrincipal,
    found: Annotated[Criteria, Depends(criteria)],
    fmt: Rdf,
    request: Request,
    cursor: Cursor = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Datasets per page")
    ] = service.DCAT_PAGE,
) -> Response:
    """A page of the datasets you may discover, as a DCAT-AP dcat:Catalog (JSON-LD unless
    Turtle is asked for); its ``hydra:view`` and ``Link`` header name the next page."""
    page = service.catalog_dcat(
        node, principal, found, fmt,
        page_url=_listing_url(node.public_url, request), cursor=cursor, limit=limit,
    )  # fmt: skip
    return _rdf_page(page, fmt)


@router.get(
    "/catalog/{institution}/{name}",
    response_model=Dataset,
    summary="A dataset's metadata",
    responses={**_DCAT_MEDIA, **errors(404, 502, 503, 504)},
    openapi_extra=OPTIONAL_AUTH,
)
def get_dataset(
    institution: Institution,
    name: DatasetName,
    node: NodeDep,
    principal: MaybePrincipal,
    fmt: JsonOrRdf,
) -> Any:
    """FAIR metadata and the PSPP-labelled column schema of one dataset (JSON, or DCAT)."""
    if fmt is not None:
        return _rdf(service.dataset_dcat(node, principal, f"{institution}/{name}", fmt), fmt)
    return service.get_dataset(node, principal, f"{institution}/{name}")


@router.get(
    "/catalog/{institution}/{name}/dcat",
    summary="A dataset as DCAT-AP",
    responses={**_DCAT_MEDIA, **errors(404, 503)},
    openapi_extra=OPTIONAL_AUTH,
)
def get_dataset_dcat(
    institution: Institution, name: DatasetName, node: NodeDep, principal: MaybePrincipal, fmt: Rdf
) -> Response:
    """One dataset as a DCAT-AP dcat:Dataset (JSON-LD unless Turtle is asked for)."""
    return _rdf(service.dataset_dcat(node, principal, f"{institution}/{name}", fmt), fmt)


@router.post(
    "/catalog",
    response_model=Dataset,
    status_code=status.HTTP_201_CREATED,
    summary="Register a dataset",
    responses=errors(403, 409, 503),
)
def register_dataset(dataset: Dataset, node: NodeDep, principal: CurrentPrincipal) -> Dataset:
    """Register a dataset of this node; its schema is checked against the store."""
    return service.register_dataset(node, principal, dataset)


@router.get(
    "/stores/{store}/columns",
    summary="A store table's columns (stewards)",
    responses=errors(403, 404, 422, 503),
)
def table_columns(
    store: StoreName,
    node: NodeDep,
    principal: CurrentPrincipal,
    table: Annotated[
        str,
        Query(
            min_length=1,
            max_length=300,
            description="A table (SQL: name or schema.name) or a file of the store.",
            examples=["ni_superalloys"],
        ),
    ],
) -> dict[str, Any]:
    """The columns the table actually has and their logical types, to describe before
    registering it (422 if the table is not in the store or outside its scope)."""
    return service.table_columns(node, principal, store, table)
