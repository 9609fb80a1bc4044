"""The audit events of the node's state changes, built from the change and who made it.

Each is written by ``access.recorder`` in the change's own transaction. ``who`` is the principal
who made the change, or a plain id for the node itself (``config@institution`` at start-up).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from audit.events import AgreementAccepted, DatasetRegistered, JobChanged, PolicyChanged
from connectors.datasets import Dataset
from policies.agreements import Acceptance
from policies.decisions import Action
from policies.governance import PolicyChange
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.jobs import Job

__all__ = ["acceptance_event", "job_event", "policy_event", "registration_event"]


def _who(institution: str, who: Principal | str) -> tuple[str, str]:
    return (who, institution) if isinstance(who, str) else (who.id, who.institution)


def policy_event(institution: str, who: Principal | str, change: PolicyChange) -> PolicyChanged:
    """A new policy version: what was added and removed, and a digest of the change."""
    principal, home = _who(institution, who)
    body = change.to_dict()
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return PolicyChanged(
        node=institution,
        principal=principal,
        institution=home,
        dataset=change.domain,
        action=Action.MANAGE.value,
        decision="allow",
        policy_version=change.version,
        previous_version=change.version - 1,
        summary=f"+{len(change.added)} -{len(change.removed)} lines in {change.domain}",
        sha256=digest,
    )


def acceptance_event(
    institution: str, who: Principal, acc: Acceptance, *, dataset: str = ""
) -> AgreementAccepted:
    """An agreement accepted by a person or, through a steward, an institution (for
    ``dataset``, when accepted from its page)."""
    body = acc.to_dict()
    return AgreementAccepted(
        node=institution,
        principal=who.id,
        institution=who.institution,
        dataset=dataset,
        agreement_id=acc.agreement,
        party=acc.holder,
        terms=acc.agreement,
        valid_from=body["accepted_at"],
        valid_until=body["valid_until"] or "",
        via=who.actor or "",
    )


def registration_event(
    institution: str, who: Principal | str, dataset: Dataset
) -> DatasetRegistered:
    """A dataset registered, or its entry changed."""
    principal, home = _who(institution, who)
    return DatasetRegistered(
        node=institution,
        principal=principal,
        institution=home,
        dataset=dataset.id,
        action=Action.MANAGE.value,
        decision="allow",
        version=dataset.version,
        licence=dataset.license,
        columns=dataset.column_names,
        embargo_until=dataset.embargo_until.isoformat() if dataset.embargo_until else "",
    )


def job_event(institution: str, job: Job) -> JobChanged:
    """A job's new status (queued, running, done, failed)."""
    return JobChanged(
        node=institution,
        principal=job.owner,
        action=job.kind,
        job_id=job.id,
        kind=job.kind,
        status=job.status,
        error=(job.error or {}).get("detail", "") if job.status == "failed" else "",
    )
