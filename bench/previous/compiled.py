"""A policy version compiled into indexes, so a decision costs a few dictionary look-ups.

Casbin's ``enforce`` walks every rule for every request. Here the rules of one version are indexed
by (domain, action) and then by subject, with exact dataset names in a dict and globs in a short
list; role grants are indexed by (domain, member). The meaning is that of ``enforcer.MODEL``;
``tests/policies/test_compiled.py`` checks both give the same answer on random policies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.filters import Filter
from policies.decisions import Action
from policies.lines import PUBLIC, PolicyLine, RoleAssignment, Rule
from policies.principals import Principal

__all__ = ["CompiledLine", "CompiledPolicy", "Match"]

_IMPLIES_DISCOVER = (Action.READ.value, Action.TRAIN.value)
_DISCOVER = Action.DISCOVER.value
_PUBLIC_ONLY = frozenset({PUBLIC})


@dataclass(frozen=True, slots=True, eq=False)
class CompiledLine:
    """A policy line with its parts pre-digested for matching and for column and row rules.

    Compared and hashed by identity: each rule is compiled once and reused across versions.
    """

    line: PolicyLine
    rule: Rule
    allow: bool
    restrictive: bool
    purpose: str
    keep: bool
    names: frozenset[str]
    sensitivities: frozenset[str]
    pspp: frozenset[str]
    rows: Filter | None

    def withholds(self, name: str, sensitivity: str, pspp: str) -> bool:
        """Whether this line withholds a column."""
        hit = name in self.names or sensitivity in self.sensitivities or pspp in self.pspp
        return (not hit) if self.keep else hit

    @property
    def has_columns_rule(self) -> bool:
        """Whether the line keeps or withholds any column."""
        return self.keep or bool(self.names or self.sensitivities or self.pspp)


@dataclass(slots=True)
class _Bucket:
    exact: dict[str, list[CompiledLine]] = field(default_factory=dict)
    globs: list[tuple[str, CompiledLine]] = field(default_factory=list)
    # Dataset name -> every line that matches it, resolved on first use within this version.
    resolved: dict[str, tuple[CompiledLine, ...]] = field(default_factory=dict)

    def add(self, pattern: str, line: CompiledLine) -> None:
        if "*" in pattern:
            self.globs.append((pattern[: pattern.index("*")], line))
        else:
            self.exact.setdefault(pattern, []).append(line)

    def find(self, name: str) -> tuple[CompiledLine, ...]:
        hit = self.resolved.get(name)
        if hit is None:
            found = list(self.exact.get(name, ()))
            found += [line for prefix, line in self.globs if name.startswith(prefix)]
            if len(self.resolved) > 10_000:
                self.resolved.clear()
            hit = self.resolved[name] = tuple(found)
        return hit


@dataclass(frozen=True, slots=True)
class Match:
    """The lines that match a request: allows, outright denies and restrictive denies."""

    allows: tuple[CompiledLine, ...]
    denies: tuple[CompiledLine, ...]
    restricts: tuple[CompiledLine, ...]


def _compile_line(line: PolicyLine, parse: Callable[[str], Filter]) -> CompiledLine:
    kinds: dict[str, set[str]] = {"name": set(), "sensitivity": set(), "pspp": set()}
    for sel in line.keep or line.withhold:
        kind, _, value = sel.partition(":")
        kinds[kind].add(value)
    rows = parse(line.rows) if line.rows else None
    return CompiledLine(
        line=line,
        rule=line.to_rule(),
        allow=line.effect == "allow",
        restrictive=line.restrictive,
        purpose=line.purpose,
        keep=bool(line.keep),
        names=frozenset(kinds["name"]),
        sensitivities=frozenset(kinds["sensitivity"]),
        pspp=frozenset(kinds["pspp"]),
        rows=rows,
    )


class CompiledPolicy:
    """The rules of one policy version, indexed for matching."""

    def __init__(
        self,
        version: int,
        p_rules: Iterable[Rule],
        g_rules: Iterable[Rule],
        previous: CompiledPolicy | None = None,
    ) -> None:
        self.version = version
        # A new version mostly repeats the previous one: reuse its validated, parsed lines.
        known = previous._compiled if previous is not None else {}
        parse = _row_parser()
        self._compiled: dict[Rule, CompiledLine] = {}
        for rule in p_rules:
            key = tuple(rule)
            if key not in self._compiled:
                hit = known.get(key)
                self._compiled[key] = hit or _compile_line(PolicyLine.from_rule(key), parse)
        self.lines = tuple(c.line for c in self._compiled.values())
        self.assignments = tuple(RoleAssignment.from_rule(r) for r in g_rules)
        self._index: dict[tuple[str, str], dict[str, _Bucket]] = {}
        for compiled in self._compiled.values():
            line = compiled.line
            self._bucket(line.domain, line.action.value, line.subject).add(line.dataset, compiled)
            if compiled.allow and line.action.value in _IMPLIES_DISCOVER:
                self._bucket(line.domain, Action.DISCOVER.value, line.subject).add(
                    line.dataset, compiled
                )
        roles: dict[tuple[str, str], set[str]] = {}
        for a in self.assignments:
            roles.setdefault((a.domain, a.member), set()).add(f"role:{a.role}")
        self._roles = {k: frozenset(v) for k, v in roles.items()}
        # Column and row shapes per set of matched lines, filled by ``evaluate`` on first use.
        self.shapes: dict[tuple[Any, ...], Any] = {}
        # Role resolution of this version, per principal and domain, filled on first use.
        self._subjects: dict[tuple[str, str, frozenset[str], str], frozenset[str]] = {}

    def _bucket(self, domain: str, action: str, subject: str) -> _Bucket:
        by_subject = self._index.setdefault((domain, action), {})
        bucket = by_subject.get(subject)
        if bucket is None:
            bucket = by_subject[subject] = _Bucket()
        return bucket

    def subjects(self, principal: Principal, domain: str) -> frozenset[str]:
        """Everything ``principal`` stands for in ``domain``: itself, institution, roles, public."""
        if principal.anonymous:
            return _PUBLIC_ONLY
        key = (principal.id, principal.institution, principal.roles, domain)
        hit = self._subjects.get(key)
        if hit is not None:
            return hit
        user = f"user:{principal.id}"
        inst = f"inst:{principal.institution}"
        out = {user, inst, PUBLIC}
        out.update(self._roles.get((domain, user), ()))
        out.update(self._roles.get((domain, inst), ()))
        if domain == principal.institution:
            out.update(f"role:{r}" for r in principal.roles)
        if len(self._subjects) > 100_000:
            self._subjects.clear()
        hit = self._subjects[key] = frozenset(out)
        return hit

    def match(
        self, principal: Principal, domain: str, dataset: str, action: str, purpose: str
    ) -> Match:
        """The lines matching a request (``dataset`` is a name within ``domain``, or ``*``)."""
        by_subject = self._index.get((domain, action))
        if not by_subject:
            return Match((), (), ())
        allows: list[CompiledLine] = []
        denies: list[CompiledLine] = []
        restricts: list[CompiledLine] = []
        any_purpose = action == _DISCOVER
        for subject in self.subjects(principal, domain):
            bucket = by_subject.get(subject)
            if bucket is None:
                continue
            for line in bucket.find(dataset):
                if not (any_purpose or line.purpose == "*" or line.purpose == purpose):
                    continue
                if line.allow:
                    allows.append(line)
                elif line.restrictive:
                    restricts.append(line)
                else:
                    denies.append(line)
        return Match(tuple(allows), tuple(denies), tuple(restricts))

    def allows(
        self, principal: Principal, domain: str, dataset: str, action: str, purpose: str
    ) -> bool:
        """The bare Casbin answer (no licence, embargo or agreement): for the agreement test."""
        m = self.match(principal, domain, dataset, action, purpose)
        return bool(m.allows) and not m.denies


def _row_parser() -> Callable[[str], Filter]:
    from connectors.filterparser import parse

    return functools.lru_cache(maxsize=4096)(parse)
