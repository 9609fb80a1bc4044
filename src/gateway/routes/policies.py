"""Stewards: policy lines, explanations, dry runs and agreements."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway import stewardship
from gateway.deps import AgreementId, CurrentPrincipal, DatasetName, Domain, Institution, NodeDep
from gateway.openapi import errors
from gateway.schemas import ExplainBody, PolicyEdit

router = APIRouter(tags=["governance"])


@router.get("/policies/{domain}", summary="A domain's policy", responses=errors(403))
def get_policy(domain: Domain, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Policy lines and role assignments of a domain (its stewards and auditors)."""
    return stewardship.policy_lines(node, principal, domain)


@router.get(
    "/policies/{domain}/history", summary="A domain's policy versions", responses=errors(403)
)
def policy_history(
    domain: Domain,
    node: NodeDep,
    principal: CurrentPrincipal,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many versions, newest first.")
    ] = 100,
) -> dict[str, Any]:
    """Each version, newest first: when, by whom, which lines were added and removed
    (stewards and auditors of the domain)."""
    return stewardship.policy_history(node, principal, domain, limit)


@router.get(
    "/policies/{domain}/agreements",
    summary="A domain's agreements and who accepted them",
    responses=errors(403),
)
def domain_agreements(
    domain: Domain,
    node: NodeDep,
    principal: CurrentPrincipal,
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="At most this many acceptances, newest first.")
    ] = 500,
) -> list[dict[str, Any]]:
    """The domain's terms of use, each with who accepted it, when and until when (stewards and
    auditors of the domain)."""
    return stewardship.domain_agreements(node, principal, domain, limit)


@router.post(
    "/policies/{domain}", summary="Change a domain's policy", responses=errors(403, 409, 503)
)
def edit_policy(
    domain: Domain, edit: PolicyEdit, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Add and remove lines; validated, versioned and recorded (stewards of the domain)."""
    return stewardship.edit_policy(node, principal, domain, edit)


@router.post(
    "/policies/{domain}/dry-run", summary="What a policy change would do", responses=errors(403)
)
def dry_run(
    domain: Domain, edit: PolicyEdit, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Who would gain or lose which actions, columns and rows; nothing is changed."""
    return stewardship.dry_run(node, principal, domain, edit)


@router.post("/explain", summary="Explain a decision", responses=errors(403, 404))
def explain(body: ExplainBody, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The decision for a principal, dataset, action and purpose, and why; no data."""
    return stewardship.explain(node, principal, body)


@router.get(
    "/datasets/{institution}/{name}/agreements",
    summary="Agreements covering a dataset (a peer's too, asked of its owner)",
    responses=errors(403, 404, 502, 503, 504),
)
def agreements(
    institution: Institution, name: DatasetName, node: NodeDep, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    """Terms of use that apply to a dataset."""
    return stewardship.agreements(node, principal, f"{institution}/{name}")


@router.post(
    "/datasets/{institution}/{name}/agreements/{agreement_id}/accept",
    summary="Accept an agreement covering a dataset (here, or through your home node)",
    responses=errors(403, 404, 502, 503, 504),
)
def accept_for_dataset(
    institution: Institution,
    name: DatasetName,
    agreement_id: AgreementId,
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


@router.post(
    "/agreements/{agreement_id}/accept",
    summary="Accept an agreement of this node",
    responses=errors(403, 404, 422, 503),
)
def accept(
    agreement_id: AgreementId,
    node: NodeDep,
    principal: CurrentPrincipal,
    institution: bool = Query(default=False, description="Accept for your whole institution"),
) -> dict[str, Any]:
    """Record your acceptance (or, as a steward, your institution's)."""
    return stewardship.accept_agreement(node, principal, agreement_id, for_institution=institution)
