"""Stewards' use cases: policy lines, explanations, dry runs, agreements.

Every change is decided by ``policies.Governance`` (which refuses cross-domain edits and invalid
lines) and recorded in the audit log; routes only parse and call these functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from audit.events import AgreementAccepted, PolicyChanged
from gateway.access import dataset_for, record
from gateway.errors import Forbidden
from gateway.node import Node
from gateway.schemas import ExplainBody, PolicyEdit
from policies.decisions import Action
from policies.governance import PolicyChange, Statement
from policies.lines import PolicyLine, RoleAssignment
from policies.principals import Principal

__all__ = ["accept_agreement", "agreements", "dry_run", "edit_policy", "explain", "policy_lines"]


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


def edit_policy(node: Node, principal: Principal, domain: str, edit: PolicyEdit) -> dict[str, Any]:
    """Add and/or remove lines of ``domain``: each applied change is a new version, recorded."""
    changes: list[PolicyChange] = []
    if edit.remove:
        changes.append(node.governance.remove_lines(principal, domain, _statements(edit.remove)))
    if edit.add:
        changes.append(node.governance.add_lines(principal, domain, _statements(edit.add)))
    for change in changes:
        record(node, _policy_event(node, principal, change))
    return {
        "domain": domain,
        "version": node.governance.version,
        "changes": [c.to_dict() for c in changes],
    }


def _policy_event(node: Node, principal: Principal, change: PolicyChange) -> PolicyChanged:
    body = change.to_dict()
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return PolicyChanged(
        node=node.institution,
        principal=principal.id,
        institution=principal.institution,
        dataset=change.domain,
        action=Action.MANAGE.value,
        decision="allow",
        policy_version=change.version,
        previous_version=change.version - 1,
        summary=f"+{len(change.added)} -{len(change.removed)} lines in {change.domain}",
        sha256=digest,
    )


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
    """The agreements that cover a dataset."""
    dataset = dataset_for(node, principal, dataset_id)
    return [a.model_dump(mode="json") for a in node.governance.agreements(dataset)]


def accept_agreement(
    node: Node, principal: Principal, agreement_id: str, *, for_institution: bool
) -> dict[str, Any]:
    """Record acceptance of an agreement by the principal (or, for a steward, their institution)."""
    acceptance = node.governance.accept(principal, agreement_id, for_institution)
    body = acceptance.to_dict()
    record(
        node,
        AgreementAccepted(
            node=node.institution,
            principal=principal.id,
            institution=principal.institution,
            agreement_id=agreement_id,
            party=acceptance.holder,
            terms=agreement_id,
            valid_from=body["accepted_at"],
            valid_until=body["valid_until"] or "",
        ),
    )
    return body
