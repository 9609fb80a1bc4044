"""Checks a policy write against the node's registries before anything is stored.

Syntax (names, patterns, the ``::`` separator) is checked by the pydantic models in ``lines``;
here are the checks that need context: known purposes, roles, agreements and datasets, user names
that would shadow roles, and row rules and column selectors that fit the datasets they govern.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from connectors.datasets import Dataset
from connectors.filters import Filter
from policies.lines import PolicyLine, RoleAssignment
from policies.principals import split_principal_id

__all__ = ["LineChecker", "Registries", "check_assignment", "check_line", "matches"]


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
    return LineChecker(reg).check(line)


class LineChecker:
    """Checks many lines against one set of registries, doing each distinct piece of work once:
    the datasets a pattern governs, a dataset's schema, and whether a row rule fits a schema."""

    def __init__(self, reg: Registries) -> None:
        self.reg = reg
        self._governed: dict[tuple[str, str], list[Dataset]] = {}
        self._schemas: dict[int, tuple[Dataset, frozenset[str], int]] = {}
        self._schema_ids: dict[tuple[tuple[str, str], ...], int] = {}
        self._fits: dict[tuple[str, int], str | None] = {}

    def check(self, line: PolicyLine) -> str | None:
        """Why ``line`` may not be written, or None when it may."""
        reg = self.reg
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
        governed = self._governed_by(line.domain, line.dataset)
        if "*" not in line.dataset and not governed:
            return f"unknown dataset {line.domain}/{line.dataset}"
        for ds in governed:
            if (reason := self._fit(line, ds)) is not None:
                return reason
        return None

    def _governed_by(self, domain: str, pattern: str) -> list[Dataset]:
        key = (domain, pattern)
        found = self._governed.get(key)
        if found is None:
            in_domain = self.reg.datasets.get(domain, {}) if self.reg.datasets else {}
            if "*" not in pattern:
                found = [in_domain[pattern]] if pattern in in_domain else []
            else:
                found = [ds for name, ds in in_domain.items() if matches(pattern, name)]
            self._governed[key] = found
        return found

    def _schema(self, ds: Dataset) -> tuple[frozenset[str], int]:
        hit = self._schemas.get(id(ds))
        if hit is None or hit[0] is not ds:
            shape = tuple((c.name, c.type.value) for c in ds.columns)
            number = self._schema_ids.setdefault(shape, len(self._schema_ids))
            hit = self._schemas[id(ds)] = (ds, frozenset(ds.column_names), number)
        return hit[1], hit[2]

    def _fit(self, line: PolicyLine, ds: Dataset) -> str | None:
        names, schema = self._schema(ds)
        for sel in line.keep + line.withhold:
            kind, _, value = sel.partition(":")
            if kind == "name" and value not in names and "*" not in line.dataset:
                return f"dataset {ds.id} has no column {value!r}"
        if not line.rows:
            return None
        key = (line.rows, schema)
        if key not in self._fits:
            self._fits[key] = _rows_problem(line.rows, ds)
        problem = self._fits[key]
        return (
            None if problem is None else f"row rule {line.rows!r} does not fit {ds.id}: {problem}"
        )


def _rows_problem(rows: str, ds: Dataset) -> str | None:
    """Why a row rule does not fit a dataset's schema, or None when it does."""
    from connectors.errors import FilterError
    from connectors.filterparser import check

    try:
        check(_parse(rows), {c.name: c.type for c in ds.columns})
    except FilterError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=1 << 14)
def _parse(text: str) -> Filter:
    from connectors.filterparser import parse

    return parse(text)


def check_assignment(assignment: RoleAssignment, reg: Registries) -> str | None:
    """Why ``assignment`` may not be written, or None when it may."""
    if assignment.role not in reg.roles:
        return f"unknown role {assignment.role!r} (known: {', '.join(sorted(reg.roles))})"
    return _user_shadows_role(assignment.user, reg.roles)
