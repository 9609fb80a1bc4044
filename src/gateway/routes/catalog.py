"""Catalog search, dataset metadata (JSON and DCAT JSON-LD), and registration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from connectors.datasets import Dataset, PSPPRole
from gateway import service
from gateway.catalog import Criteria
from gateway.deps import CurrentPrincipal, NodeDep, PathSlug
from gateway.schemas import CatalogPage

router = APIRouter(tags=["catalog"])


def criteria(
    q: Annotated[str | None, Query(max_length=500, description="Words to find")] = None,
    pspp: Annotated[
        list[PSPPRole], Query(max_length=6, description="Has a column of this PSPP role")
    ] = [],  # noqa: B006
    column: Annotated[str | None, Query(max_length=128)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    license: Annotated[str | None, Query(max_length=128)] = None,
    institution: Annotated[str | None, Query(max_length=64)] = None,
) -> Criteria:
    """Search criteria from the query string."""
    return Criteria(q, tuple(pspp), column, unit, license, institution)


@router.get("/catalog", response_model=CatalogPage, summary="Search the catalog")
def search_catalog(
    node: NodeDep,
    principal: CurrentPrincipal,
    found: Annotated[Criteria, Depends(criteria)],
    federated: Annotated[
        bool, Query(description="Search the peers too; each site's status is in meta")
    ] = False,
) -> CatalogPage:
    """Datasets you may discover that match every given criterion."""
    return service.catalog_page(node, principal, found, federated=federated)


@router.get("/catalog.jsonld", summary="The catalog as DCAT (JSON-LD)")
def catalog_dcat(node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every dataset you may discover, as a dcat:Catalog."""
    return service.catalog_dcat(node, principal)


@router.get("/catalog/{institution}/{name}", response_model=Dataset, summary="A dataset's metadata")
def get_dataset(
    institution: PathSlug, name: PathSlug, node: NodeDep, principal: CurrentPrincipal
) -> Dataset:
    """FAIR metadata and the PSPP-labelled column schema of one dataset."""
    return service.get_dataset(node, principal, f"{institution}/{name}")


@router.get("/catalog/{institution}/{name}/dcat", summary="A dataset as DCAT (JSON-LD)")
def get_dataset_dcat(
    institution: PathSlug, name: PathSlug, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """One dataset as a dcat:Dataset."""
    return service.dataset_dcat(node, principal, f"{institution}/{name}")


@router.post(
    "/catalog",
    response_model=Dataset,
    status_code=status.HTTP_201_CREATED,
    summary="Register a dataset",
)
def register_dataset(dataset: Dataset, node: NodeDep, principal: CurrentPrincipal) -> Dataset:
    """Register a dataset of this node; its schema is checked against the store."""
    return service.register_dataset(node, principal, dataset)
