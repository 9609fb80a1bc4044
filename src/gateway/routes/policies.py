"""Stewards: policy lines, explanations, dry runs and agreements."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway import stewardship
from gateway.deps import CurrentPrincipal, NodeDep, PathId, PathSlug
from gateway.schemas import ExplainBody, PolicyEdit

router = APIRouter(tags=["governance"])


@router.get("/policies/{domain}", summary="A domain's policy")
def get_policy(domain: PathSlug, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Policy lines and role assignments of a domain (its stewards and auditors)."""
    return stewardship.policy_lines(node, principal, domain)


@router.post("/policies/{domain}", summary="Change a domain's policy")
def edit_policy(
    domain: PathSlug, edit: PolicyEdit, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Add and remove lines; validated, versioned and recorded (stewards of the domain)."""
    return stewardship.edit_policy(node, principal, domain, edit)


@router.post("/policies/{domain}/dry-run", summary="What a policy change would do")
def dry_run(
    domain: PathSlug, edit: PolicyEdit, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Who would gain or lose which actions, columns and rows; nothing is changed."""
    return stewardship.dry_run(node, principal, domain, edit)


@router.post("/explain", summary="Explain a decision")
def explain(body: ExplainBody, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The decision for a principal, dataset, action and purpose, and why; no data."""
    return stewardship.explain(node, principal, body)


@router.get("/datasets/{institution}/{name}/agreements", summary="Agreements covering a dataset")
def agreements(
    institution: PathSlug, name: PathSlug, node: NodeDep, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    """Terms of use that apply to a dataset."""
    return stewardship.agreements(node, principal, f"{institution}/{name}")


@router.post(
    "/datasets/{institution}/{name}/agreements/{agreement_id}/accept",
    summary="Accept an agreement covering a dataset (here, or through your home node)",
)
def accept_for_dataset(
    institution: PathSlug,
    name: PathSlug,
    agreement_id: PathId,
    node: NodeDep,
    principal: CurrentPrincipal,
    whole_institution: Annotated[
        bool, Query(description="Accept for your whole institution (stewards)")
    ] = False,
) -> dict[str, Any]:
    """Record your acceptance (or, as a steward, your institution's). Asked of your home node
    for a peer's dataset, it is forwarded to the owner, which records it."""
    return stewardship.accept_dataset_agreement(
        node, principal, f"{institution}/{name}", agreement_id, for_institution=whole_institution
    )


@router.post("/agreements/{agreement_id}/accept", summary="Accept an agreement")
def accept(
    agreement_id: PathId,
    node: NodeDep,
    principal: CurrentPrincipal,
    institution: bool = Query(default=False, description="Accept for your whole institution"),
) -> dict[str, Any]:
    """Record your acceptance (or, as a steward, your institution's)."""
    return stewardship.accept_agreement(node, principal, agreement_id, for_institution=institution)
