"""Stewards' use cases: policy lines, explanations, dry runs, agreements.

Every change is decided by ``policies.Governance`` (which refuses cross-domain edits and invalid
lines) and its audit entry is written in the change's own transaction: both commit or neither
does (503). Routes only parse and call these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from gateway.access import dataset_for, recorder
from gateway.errors import Forbidden, NotFound
from gateway.federation import forward_acceptance, is_remote, peer_agreements
from gateway.node import Node
from gateway.records import acceptance_event, policy_event
from gateway.schemas import ExplainBody, PolicyEdit
from policies.decisions import Action
from policies.governance import Statement
from policies.lines import PolicyLine, RoleAssignment
from policies.principals import Principal

__all__ = [
    "accept_agreement",
    "accept_dataset_agreement",
    "agreements",
    "domain_agreements",
    "dry_run",
    "edit_policy",
    "explain",
    "policy_history",
    "policy_lines",
]


def _statement(raw: dict[str, Any]) -> Statement:
    return (
        RoleAssignment.model_validate(raw)
        if "role" in raw and "action" not in raw
        else PolicyLine.model_validate(raw)
    )


def _statements(raws: Sequence[dict[str, Any]]) -> list[Statement]:
    return [_statement(r) for r in raws]


def policy_lines(node: Node, principal: Principal, domain: str) -> dict[str, Any]:
    """The lines and role assignments of ``domain``, with the current policy version."""
    found = node.governance.lines(principal, domain)
    return {
        "domain": domain,
        "version": node.governance.version,
        "lines": [s.model_dump(mode="json", exclude_defaults=True) for s in found],
    }


def policy_history(
    node: Node, principal: Principal, domain: str, limit: int = 100
) -> dict[str, Any]:
    """The versions of ``domain``'s policy, newest first: when, by whom, lines added and removed."""
    changes = node.governance.history(principal, domain, limit)
    return {"domain": domain, "version": node.governance.version,
            "changes": [c.to_dict() for c in changes]}  # fmt: skip


def edit_policy(node: Node, principal: Principal, domain: str, edit: PolicyEdit) -> dict[str, Any]:
    """Remove and add lines of ``domain`` as one new version, recorded with it (all or nothing)."""
    hook = recorder(node, partial(policy_event, node.institution, principal))
    change = node.governance.edit(
        principal,
        domain,
        add=_statements(edit.add),
        remove=_statements(edit.remove),
        record=hook,
    )
    return {"domain": domain, "version": node.governance.version, "changes": [change.to_dict()]}


def dry_run(node: Node, principal: Principal, domain: str, edit: PolicyEdit) -> dict[str, Any]:
    """Who would gain or lose what if ``edit`` were applied (nothing is changed)."""
    impacts = node.governance.dry_run(
        principal, domain, add=_statements(edit.add), remove=_statements(edit.remove)
    )
    return {"domain": domain, "version": node.governance.version, "impacts": impacts}


def explain(node: Node, principal: Principal, body: ExplainBody) -> dict[str, Any]:
    """The decision for a principal (yourself by default) on a dataset, and why; no data."""
    dataset = dataset_for(node, principal, body.dataset)
    subject = principal
    if body.principal is not None:
        # Explaining someone else's access is a steward's or an auditor's business.
        allowed = any(
            node.governance.check_domain(principal, dataset.institution, act).allowed
            for act in (Action.MANAGE, Action.AUDIT)
        )
        if not allowed:
            raise Forbidden("only stewards and auditors of the domain may explain others' access")
        subject = Principal(
            subject=body.principal.subject,
            institution=body.principal.institution,
            roles=frozenset(body.principal.roles),
            namespace=body.principal.namespace,
        )
    decision = node.governance.decide(subject, dataset, body.action, body.purpose, body.columns)
    return decision.summary() | {"principal": subject.id}


def agreements(node: Node, principal: Principal, dataset_id: str) -> list[dict[str, Any]]:
    """The agreements that cover a dataset (a peer's: as its owner lists them)."""
    if is_remote(node, dataset_id):
        return peer_agreements(node, principal, dataset_id)
    dataset = dataset_for(node, principal, dataset_id)
    return [a.model_dump(mode="json") for a in node.governance.agreements(dataset)]


def accept_agreement(
    node: Node, principal: Principal, agreement_id: str, *, for_institution: bool
) -> dict[str, Any]:
    """Record acceptance of an agreement by the principal (or, for a steward, their institution)."""
    hook = recorder(node, partial(acceptance_event, node.institution, principal))
    acceptance = node.governance.accept(principal, agreement_id, for_institution, record=hook)
    return acceptance.to_dict()


def accept_dataset_agreement(
    node: Node,
    principal: Principal,
    dataset_id: str,
    agreement_id: str,
    *,
    for_institution: bool,
) -> dict[str, Any]:
    """Accept an agreement covering a dataset you may discover; a peer's dataset's agreement is
    forwarded to its owner, which records the acceptance (this node records the forwarding)."""
    if is_remote(node, dataset_id):
        return forward_acceptance(
            node, principal, dataset_id, agreement_id, for_institution=for_institution
        )
    dataset = dataset_for(node, principal, dataset_id)
    if agreement_id not in {a.id for a in node.governance.agreements(dataset)}:
        raise NotFound(f"no agreement {agreement_id!r} covers {dataset_id!r}")
    event = partial(acceptance_event, node.institution, principal, dataset=dataset.id)
    acceptance = node.governance.accept(
        principal, agreement_id, for_institution, record=recorder(node, event)
    )
    return acceptance.to_dict()


def domain_agreements(
    node: Node, principal: Principal, domain: str, limit: int = 500
) -> list[dict[str, Any]]:
    """The agreements of ``domain`` and who accepted them, when, and until when (stewards and
    auditors of the domain)."""
    return [
        spec.model_dump(mode="json") | {"acceptances": [a.to_dict() for a in found]}
        for spec, found in node.governance.domain_agreements(principal, domain, limit)
    ]
