"""Checks a policy write against the node's registries before anything is stored.

Syntax (names, patterns, the ``::`` separator) is checked by the pydantic models in ``lines``;
here are the checks that need context: known purposes, roles, agreements and datasets, user names
that would shadow roles, and row rules and column selectors that fit the datasets they govern.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from connectors.datasets import Dataset
from policies.lines import PolicyLine, RoleAssignment
from policies.principals import split_principal_id

__all__ = ["Registries", "check_assignment", "check_line", "matches"]


@dataclass(frozen=True)
class Registries:
    """What a policy line may refer to."""

    purposes: frozenset[str]
    roles: frozenset[str]
    agreements: frozenset[str]
    datasets: Mapping[str, Mapping[str, Dataset]] | None = field(default=None)

    def with_datasets(self, datasets: Iterable[Dataset]) -> Registries:
        """A copy that also knows these datasets (by domain, then name)."""
        by_domain: dict[str, dict[str, Dataset]] = {}
        for ds in datasets:
            by_domain.setdefault(ds.institution, {})[ds.name] = ds
        return Registries(self.purposes, self.roles, self.agreements, by_domain)


def matches(pattern: str, name: str) -> bool:
    """Casbin's ``keyMatch``: exact, or a prefix ending in ``*``."""
    star = pattern.find("*")
    if star < 0:
        return name == pattern
    return name[:star] == pattern[:star]


def _user_shadows_role(user: str | None, roles: frozenset[str]) -> str | None:
    if user is not None and split_principal_id(user)[1] in roles:
        return f"user name {user!r} equals a role name; grant the role instead"
    return None


def check_line(line: PolicyLine, reg: Registries) -> str | None:
    """Why ``line`` may not be written, or None when it may."""
    if line.purpose != "*" and line.purpose not in reg.purposes:
        return f"unknown purpose {line.purpose!r} (known: {', '.join(sorted(reg.purposes))})"
    if line.role is not None and line.role not in reg.roles:
        return f"unknown role {line.role!r} (known: {', '.join(sorted(reg.roles))})"
    if (reason := _user_shadows_role(line.user, reg.roles)) is not None:
        return reason
    if line.agreement is not None and line.agreement not in reg.agreements:
        return f"unknown agreement {line.agreement!r}"
    if reg.datasets is None:
        return None
    domain = reg.datasets.get(line.domain, {})
    governed = [ds for name, ds in domain.items() if matches(line.dataset, name)]
    if "*" not in line.dataset and not governed:
        return f"unknown dataset {line.domain}/{line.dataset}"
    for ds in governed:
        if (reason := _fits(line, ds)) is not None:
            return reason
    return None


def _fits(line: PolicyLine, ds: Dataset) -> str | None:
    names = set(ds.column_names)
    for sel in line.keep + line.withhold:
        kind, _, value = sel.partition(":")
        if kind == "name" and value not in names and "*" not in line.dataset:
            return f"dataset {ds.id} has no column {value!r}"
    if line.rows:
        from connectors.errors import FilterError
        from connectors.filterparser import check, parse

        try:
            check(parse(line.rows), {c.name: c.type for c in ds.columns})
        except FilterError as exc:
            return f"row rule {line.rows!r} does not fit {ds.id}: {exc}"
    return None


def check_assignment(assignment: RoleAssignment, reg: Registries) -> str | None:
    """Why ``assignment`` may not be written, or None when it may."""
    if assignment.role not in reg.roles:
        return f"unknown role {assignment.role!r} (known: {', '.join(sorted(reg.roles))})"
    return _user_shadows_role(assignment.user, reg.roles)
