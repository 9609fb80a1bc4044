"""Dry run of a policy change: compare decisions before and after, for chosen principals.

Without a list of principals, the ones the policy names stand in: each named user, one member of
each named institution, and one member of the domain holding each named role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.datasets import Dataset
from policies.compiled import CompiledPolicy
from policies.decisions import Action, Decision
from policies.evaluate import Context, evaluate
from policies.lines import PUBLIC
from policies.principals import ANONYMOUS, NAMESPACE, Principal, split_principal_id

__all__ = ["impacts", "stand_ins"]

_ACTIONS = (Action.DISCOVER, Action.READ, Action.TRAIN, Action.EXPORT_MODEL)
ANONYMOUS_SUBJECT = PUBLIC


def stand_ins(policies: Sequence[CompiledPolicy], domain: str) -> list[Principal]:
    """Principals standing for every subject the policies name in ``domain``."""
    found: dict[str, Principal] = {}
    for policy in policies:
        subjects = [line.subject for line in policy.lines_of(domain)]
        subjects += [a.member for a in policy.assignments_of(domain)]
        for subject in subjects:
            kind, _, name = subject.partition(":")
            if subject == ANONYMOUS_SUBJECT:
                found.setdefault(subject, ANONYMOUS)
            elif kind == "user":
                # Standing in for a named user: of the institution its namespace names, if any.
                ns, sub = split_principal_id(name)
                inst = ns if NAMESPACE.match(ns) else domain
                found.setdefault(subject, Principal(sub, inst, namespace=ns))
            elif kind == "inst":
                found.setdefault(subject, Principal("any-member", name))
            else:
                found.setdefault(subject, Principal(f"any-{name}", domain, frozenset({name})))
    return sorted(found.values(), key=lambda p: (p.id, sorted(p.roles)))


def _rows(decision: Decision) -> str | None:
    if decision.row_filter is None:
        return None
    from connectors.filterparser import unparse

    return unparse(decision.row_filter)


def _diff(before: Decision, after: Decision) -> dict[str, Any] | None:
    change: dict[str, Any] = {}
    if before.allowed != after.allowed:
        change["access"] = "gained" if after.allowed else "lost"
    if before.allowed or after.allowed:
        was, now = set(before.columns), set(after.columns)
        if now - was:
            change["columns_gained"] = sorted(now - was)
        if was - now:
            change["columns_lost"] = sorted(was - now)
        masks_before = {n: m.kind.value for n, m in before.masks.items()}
        masks_after = {n: m.kind.value for n, m in after.masks.items()}
        if masks_before != masks_after:
            change["masks"] = {"before": masks_before, "after": masks_after}
        if before.allowed and after.allowed and before.row_filter != after.row_filter:
            change["rows"] = {"before": _rows(before), "after": _rows(after)}
    return change or None


def impacts(
    ctx: Context,
    before: CompiledPolicy,
    after: CompiledPolicy,
    datasets: Iterable[Dataset],
    principals: Iterable[Principal] | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Every (principal, dataset, action, purpose) whose decision would change, and how."""
    scope = list(datasets)
    domains = {d.institution for d in scope}
    people = (
        list(principals)
        if principals is not None
        else [p for d in sorted(domains) for p in stand_ins((before, after), d)]
    )
    out: list[dict[str, Any]] = []
    for person in people:
        for ds in scope:
            for action in _ACTIONS:
                purposes = ["*"] if action is Action.DISCOVER else sorted(ctx.purposes)
                for purpose in purposes:
                    old, _ = evaluate(ctx, before, person, ds, action, purpose, None, now)
                    new, _ = evaluate(ctx, after, person, ds, action, purpose, None, now)
                    change = _diff(old, new)
                    if change is not None:
                        out.append(
                            {
                                "principal": person.id,
                                "roles": sorted(person.roles),
                                "dataset": ds.id,
                                "action": action.value,
                                "purpose": purpose,
                                **change,
                            }
                        )
    return out
