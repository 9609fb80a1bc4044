"""The straightforward reading of a policy, as the oracle the compiled indexes must agree with.

Every request walks every line, in policy order, and applies the Casbin matcher of
``policies.enforcer.MODEL`` clause by clause; lines come from ``PolicyLine.from_rule`` (full
pydantic validation), roles from a scan of every grant, and no shape is ever cached. It offers
what ``evaluate`` asks of a compiled policy, so the same request can be decided both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.filterparser import parse
from connectors.filters import Filter
from policies.compiled import Match
from policies.lines import PUBLIC, PolicyLine, RoleAssignment, Rule
from policies.principals import Principal
from policies.validation import matches

_MASKS = ("drop", "null", "redact", "hash")


class ReferenceLine:
    """One line, with what ``evaluate`` reads of a compiled line, computed from the model."""

    def __init__(self, rule: Rule, line: PolicyLine) -> None:
        self.rule = tuple(rule)
        self.line = line
        self.body = self  # evaluate keys column vectors by a line's body
        self.allow = line.effect == "allow"
        self.restrictive = line.restrictive
        self.agreement = line.agreement
        self.embargo = line.embargo
        self.rows: Filter | None = parse(line.rows) if line.rows else None
        self.has_columns_rule = bool(line.keep or line.withhold)
        self.shut = _MASKS.index(line.mask)

    def withholds(self, name: str, sensitivity: str, pspp: str) -> bool:
        """Whether the line withholds a column, read from its selectors one by one."""
        selectors = self.line.keep or self.line.withhold
        hit = any(
            sel in (f"name:{name}", f"sensitivity:{sensitivity}", f"pspp:{pspp}")
            for sel in selectors
        )
        return not hit if self.line.keep else hit


class _NeverKept(dict[Any, Any]):
    """A shapes cache that keeps nothing: every decision computes its shape afresh."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class ReferencePolicy:
    """A policy version read line by line."""

    def __init__(self, version: int, p_rules: Sequence[Rule], g_rules: Sequence[Rule]) -> None:
        self.version = version
        unique = list(dict.fromkeys(tuple(r) for r in p_rules))
        # policy order: the order of the rules within their domain
        self.lines = [ReferenceLine(r, PolicyLine.from_rule(r)) for r in unique]
        self.assignments = [RoleAssignment.from_rule(r) for r in dict.fromkeys(map(tuple, g_rules))]
        self.shapes: dict[Any, Any] = _NeverKept()

    def subjects(self, principal: Principal, domain: str) -> set[str]:
        """``g(r.sub, p.sub, r.dom)``: the request subject and every subject linked to it."""
        if principal.anonymous:
            return {PUBLIC}
        user, inst = f"user:{principal.id}", f"inst:{principal.institution}"
        out = {user, inst, PUBLIC}
        for a in self.assignments:
            if a.domain == domain and a.member in (user, inst):
                out.add(f"role:{a.role}")
        if domain == principal.institution:
            out |= {f"role:{r}" for r in principal.roles}
        return out

    def match(
        self, principal: Principal, domain: str, dataset: str, action: str, purpose: str
    ) -> Match:
        """The matching lines, clause by clause of the model's matcher."""
        subjects = self.subjects(principal, domain)
        found = []
        for ref in self.lines:
            line = ref.line
            act = line.action.value
            if (
                line.subject in subjects
                and line.domain == domain
                and matches(line.dataset, dataset)
                and (
                    action == act
                    or (ref.allow and action == "discover" and act in ("read", "train"))
                )
                and (line.purpose == "*" or line.purpose == purpose or action == "discover")
            ):
                found.append(ref)
        return Match(
            tuple(x for x in found if x.allow),  # type: ignore[misc]
            tuple(x for x in found if not x.allow and not x.restrictive),  # type: ignore[misc]
            tuple(x for x in found if x.restrictive),  # type: ignore[misc]
        )
