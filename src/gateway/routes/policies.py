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


@router.get("/policies/{domain}/history", summary="A domain's policy versions")
def policy_history(
    domain: PathSlug,
    node: NodeDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Each version, newest first: when, by whom, which lines were added and removed."""
    return stewardship.policy_history(node, principal, domain, limit)


@router.get("/policies/{domain}/agreements", summary="A domain's agreements and acceptances")
def domain_agreements(
    domain: PathSlug,
    node: NodeDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[dict[str, Any]]:
    """The domain's terms of use, each with who accepted it, when and until when."""
    return stewardship.domain_agreements(node, principal, domain, limit)


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


@router.post("/agreements/{agreement_id}/accept", summary="Accept an agreement")
def accept(
    agreement_id: PathId,
    node: NodeDep,
    principal: CurrentPrincipal,
    institution: bool = Query(default=False, description="Accept for your whole institution"),
) -> dict[str, Any]:
    """Record your acceptance (or, as a steward, your institution's)."""
    return stewardship.accept_agreement(node, principal, agreement_id, for_institution=institution)
