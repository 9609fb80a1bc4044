"""The one place where the gateway asks for a decision, records it, and refuses.

Routes never decide: they call a service, and services call ``ensure`` (datasette's
``ensure_permission`` is the model): the decision is appended to the audit log before anything
else happens, allow or deny; if the log cannot be written, nothing is released (503). Denials
are rate-limited per principal (``audit.ratelimit.DenialLimiter``): past a burst they are counted
and recorded as one ``DenialsSuppressed`` summary, so a flood of refused requests cannot flood
the log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa

from audit.errors import AuditUnavailable
from audit.events import DecisionMade, DenialsSuppressed, Event
from audit.log import Also
from connectors.datasets import Dataset
from gateway.catalog_search import CURSOR_KEY, Criteria, local_after, local_cursor
from gateway.errors import Forbidden, NotFound, ServiceUnavailable
from gateway.observability import request_id_var
from policies.decisions import Action, Decision
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = [
    "dataset_for",
    "discoverable",
    "discoverable_page",
    "discoverer",
    "ensure",
    "ensure_held",
    "flush_denials",
    "record",
    "record_all",
    "recorder",
    "recorder_many",
]

T = TypeVar("T")


def record(node: Node, event: Event, *, also: Also | None = None) -> int:
    """Append ``event`` to the audit log, failing closed with 503 if it cannot be written;
    ``also`` writes what belongs with the entry in its transaction (see ``AuditLog.append``).

    An event that names no request gets the id of the request being served, if any."""
    try:
        return node.audit.append(_stamped(event), also=also)
    except AuditUnavailable as exc:
        raise ServiceUnavailable("the audit log cannot be written; nothing was released") from exc


def _stamped(event: Event) -> Event:
    """``event``, with the id of the request being served if it names no request."""
    if not event.request_id and (rid := request_id_var.get()) != "-":
        return dataclasses.replace(event, request_id=rid)
    return event


def recorder(node: Node, event: Callable[[T], Event]) -> Callable[[sa.Connection, T], None]:
    """A hook for a state change's own transaction: it appends ``event(change)`` on the same
    connection, so the change and its entry commit together; if the entry cannot be written the
    hook raises 503 and the transaction, change included, rolls back."""

    def hook(conn: sa.Connection, change: T) -> None:
        try:
            node.audit.append_in(conn, [_stamped(event(change))])
        except AuditUnavailable as exc:
            raise ServiceUnavailable(
                "the audit log cannot be written; nothing was changed"
            ) from exc

    return hook


def recorder_many(
    node: Node, event: Callable[[T], Event]
) -> Callable[[sa.Connection, Sequence[T]], None]:
    """``recorder`` for changes made together: one entry per change, all in their transaction."""

    def hook(conn: sa.Connection, changes: Sequence[T]) -> None:
        try:
            node.audit.append_in(conn, [_stamped(event(change)) for change in changes])
        except AuditUnavailable as exc:
            raise ServiceUnavailable(
                "the audit log cannot be written; nothing was changed"
            ) from exc

    return hook


def discoverable(node: Node, principal: Principal, dataset_ids: Sequence[str]) -> list[Dataset]:
    """The datasets among ``dataset_ids`` that exist and ``principal`` may discover, in the
    order asked for, read in one query (a listing's filter: what is left out is not recorded)."""
    may = discoverer(node, principal)
    return [ds for ds in node.catalog.find_many(dataset_ids).values() if may(ds)]


def discoverable_page(
    node: Node, principal: Principal, criteria: Criteria, *, cursor: str | None, limit: int
) -> tuple[list[Dataset], str | None]:
    """A page of this node's datasets that match ``criteria`` and ``principal`` may discover,
    after ``cursor`` (its place sealed, see ``catalog_search``; 400 for one of another search),
    and the cursor of the page after it (None on the last)."""
    key = node.key.derived(CURSOR_KEY)
    after = local_after(cursor, criteria, key) if cursor else None
    found, last = node.catalog.page(
        criteria, after=after, limit=limit, keep=discoverer(node, principal)
    )
    return found, None if last is None else local_cursor(criteria, last, key)


def discoverer(node: Node, principal: Principal) -> Callable[[Dataset], bool]:
    """Whether ``principal`` may discover a dataset (the catalog's filter)."""

    def may(dataset: Dataset) -> bool:
        return node.governance.decide(principal, dataset, Action.DISCOVER, "*").allowed

    return may


def dataset_for(
    node: Node, principal: Principal, dataset_id: str, *, request_id: str = ""
) -> Dataset:
    """The dataset, if it exists and ``principal`` may discover it; else one and the same 404."""
    missing = NotFound(f"no dataset {dataset_id!r}")
    try:
        dataset = node.catalog.get(dataset_id)
    except NotFound:
        raise missing from None
    decision = node.governance.decide(principal, dataset, Action.DISCOVER, "*", None)
    if not decision.allowed:
        # Recorded, so cross-domain probing shows up in the log; answered as if absent.
        _record_decision(node, principal, decision, request_id)
        raise missing
    return dataset


def ensure(
    node: Node,
    principal: Principal,
    dataset: Dataset,
    action: Action,
    purpose: str,
    columns: Sequence[str] | None = None,
    *,
    request_id: str = "",
) -> Decision:
    """Decide, record the decision, and raise Forbidden with the reasons on a deny."""
    decision = node.governance.decide(principal, dataset, action, purpose, columns)
    _record_decision(node, principal, decision, request_id)
    if not decision.allowed:
        raise _forbidden(node, principal, dataset, decision)
    return decision


def ensure_held(
    node: Node,
    principal: Principal,
    dataset: Dataset,
    action: Action,
    purpose: str,
    columns: Sequence[str] | None = None,
    *,
    request_id: str = "",
) -> tuple[Decision, Event]:
    """As ``ensure``, but an allow is returned with its entry instead of being recorded here:
    the caller appends the entry (``record_all``) before anything is released, with the entries
    that follow it when nothing is released before the end. A deny is recorded and raised."""
    decision = node.governance.decide(principal, dataset, action, purpose, columns)
    if not decision.allowed:
        _record_decision(node, principal, decision, request_id)
        raise _forbidden(node, principal, dataset, decision)
    flush_denials(node)
    # stamped now: the entry says when the decision was made, not when it was written
    event = _event(node, principal, decision, request_id)
    return decision, dataclasses.replace(_stamped(event), time=node.audit.now())


def record_all(node: Node, events: Sequence[Event], *, also: Also | None = None) -> list[int]:
    """Append ``events`` in order in one transaction (with ``also``'s writes), failing closed
    with 503 if they cannot be written."""
    try:
        return node.audit.append_many([_stamped(e) for e in events], also=also)
    except AuditUnavailable as exc:
        raise ServiceUnavailable("the audit log cannot be written; nothing was released") from exc


def _forbidden(node: Node, principal: Principal, dataset: Dataset, decision: Decision) -> Forbidden:
    # What the token lacked (a roles claim the issuer should carry) is part of the answer.
    reasons = [*decision.reasons, *principal.notes]
    extra: dict[str, object] = {}
    detail = "; ".join(reasons) or "not allowed"
    if decision.agreements:
        terms = where_to_accept(node, principal, dataset, decision.agreements)
        extra["agreements"] = terms
        detail += "; " + "; ".join(
            f"accept agreement {t['id']!r} with POST {t['accept']}" for t in terms
        )
    return Forbidden(detail, reasons=reasons, policy_version=decision.policy_version, **extra)


def where_to_accept(
    node: Node, principal: Principal, dataset: Dataset, agreements: Sequence[str]
) -> list[dict[str, str]]:
    """Each agreement's title and where ``principal`` can accept it: at their home node when it
    is a peer (its token works there), and here, at the owner."""
    titles = {a.id: a.title for a in node.governance.agreements(dataset)}
    path = f"/datasets/{dataset.id}/agreements/{{}}/accept"
    home = node.peers.get(principal.actor or principal.institution)
    out = []
    for agreement in agreements:
        here = node.public_url.rstrip("/") + path.format(agreement)
        entry = {"id": agreement, "title": titles.get(agreement, agreement), "accept_here": here}
        if home is not None:
            base = (home.config.public_url or home.config.base_url).rstrip("/")
            entry["accept"] = base + path.format(agreement)
        else:
            entry["accept"] = here
        out.append(entry)
    return out


def _record_decision(node: Node, principal: Principal, decision: Decision, request_id: str) -> None:
    """Record an allow always; a denial unless the principal's denials are being counted."""
    logged = decision.allowed or node.denials.admit(principal.id, principal.institution)
    flush_denials(node)
    if logged:
        record(node, _event(node, principal, decision, request_id))


def flush_denials(node: Node, *, everything: bool = False) -> None:
    """Record the summaries of denials counted in closed windows (all windows: ``everything``)."""
    for s in node.denials.drain(everything=everything):
        record(
            node,
            DenialsSuppressed(
                node=node.institution,
                principal=s.principal,
                institution=s.institution,
                decision="deny",
                suppressed=s.count,
                since=s.since.isoformat(),
                until=s.until.isoformat(),
            ),
        )


def _event(node: Node, principal: Principal, decision: Decision, request_id: str) -> DecisionMade:
    summary = decision.summary()
    return DecisionMade(
        request_id=request_id,
        node=node.institution,
        principal=principal.id,
        institution=principal.institution,
        dataset=decision.dataset_id,
        action=decision.action.value,
        purpose=decision.purpose,
        decision="allow" if decision.allowed else "deny",
        policy_version=decision.policy_version,
        reasons=decision.reasons,
        columns=decision.columns,
        withheld=decision.withheld,
        masked=summary["masked"],
        mask_key=summary["mask_key"],
        row_filter=summary["row_filter"],
        obligations=tuple(summary["obligations"]),
        matched=decision.matched,
    )
