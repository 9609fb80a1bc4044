"""A policy version compiled into indexes, so a decision costs a few dictionary look-ups.

Casbin's ``enforce`` walks every rule for every request. Here the rules of one version are split
by domain, and each domain's rules are indexed by action, subject, purpose and dataset pattern,
each leaf holding the matching allow, deny and restrictive lines ready to use. A request looks
up its few subjects (itself, its institution, its roles, ``public``), its purpose and ``*``, and
the patterns its dataset name can match (the name, each prefix ending at a separator followed by
``*``, and ``*``): a few dozen look-ups, whatever the size of the policy. Role grants are indexed
by (domain, member). The meaning is that of ``enforcer.MODEL``; ``tests/policies`` check that
this index, a plain scan (``reference``) and Casbin's own ``enforce`` agree on random policies.

Reading is cheap too: the parts of a rule (subject, domain, body) are validated and compiled
once per distinct value (see ``lines.read_rule``), and a domain whose rules did not change since
the previous version keeps its index.
"""

from __future__ import annotations

import functools
import gc
import operator
from collections.abc import Iterable
from typing import Any, NamedTuple

from connectors.filters import Filter
from policies.decisions import Action
from policies.lines import (
    PUBLIC,
    BodyFields,
    PolicyLine,
    RoleAssignment,
    Rule,
    forget_rules,
    line_of,
    read_assignment,
    read_body,
    read_domain,
    read_rule,
    read_subject,
    rule_body,
)
from policies.principals import Principal

__all__ = ["Body", "CompiledLine", "CompiledPolicy", "Match", "dataset_keys", "forget"]

_IMPLIES_DISCOVER = (Action.READ.value, Action.TRAIN.value)
_DISCOVER = Action.DISCOVER.value
_PUBLIC_ONLY = frozenset({PUBLIC})
_KINDS = ("drop", "null", "redact", "hash")
_SEPARATORS = frozenset("-_.")


class Body:
    """The part of a rule after subject and domain, compiled once per distinct text."""

    __slots__ = (
        "action",
        "actions",
        "agreement",
        "allow",
        "dataset",
        "embargo",
        "has_columns_rule",
        "keep",
        "names",
        "pspp",
        "purpose",
        "restrictive",
        "rows",
        "rows_text",
        "sensitivities",
        "shut",
    )

    def __init__(self, line: BodyFields) -> None:
        kinds: dict[str, set[str]] = {"name": set(), "sensitivity": set(), "pspp": set()}
        for sel in line.keep or line.withhold:
            kind, _, value = sel.partition(":")
            kinds[kind].add(value)
        self.dataset = line.dataset
        self.action = line.action.value
        implied = line.effect == "allow" and self.action in _IMPLIES_DISCOVER
        self.actions = (self.action, _DISCOVER) if implied else (self.action,)
        self.purpose = line.purpose
        self.allow = line.effect == "allow"
        self.keep = bool(line.keep)
        self.has_columns_rule = bool(line.keep or line.withhold)
        self.restrictive = not self.allow and bool(self.has_columns_rule or line.rows)
        self.names = frozenset(kinds["name"])
        self.sensitivities = frozenset(kinds["sensitivity"])
        self.pspp = frozenset(kinds["pspp"])
        self.shut = _KINDS.index(line.mask)
        self.agreement = line.agreement
        self.embargo = line.embargo
        self.rows_text = line.rows
        # Parsed now (once per distinct text in the process): a stored rule that does not
        # parse stops the load, as a refused write would have.
        self.rows: Filter | None = _parse_rows(line.rows) if line.rows else None

    def withholds(self, name: str, sensitivity: str, pspp: str) -> bool:
        """Whether this body withholds a column."""
        hit = name in self.names or sensitivity in self.sensitivities or pspp in self.pspp
        return not hit if self.keep else hit


@functools.lru_cache(maxsize=1 << 16)
def _compiled_body(kind: str, body: Rule) -> Body:
    return Body(read_body(kind, body))


@functools.lru_cache(maxsize=1 << 14)
def _parse_rows(text: str) -> Filter:
    from connectors.filterparser import parse

    return parse(text)


class CompiledLine:
    """One line of a version: its rule, its place in its domain's policy, subject and body.

    Compared and hashed by identity: each line is compiled once per version (or kept from the
    previous one) and used as a key of per-version shapes.
    """

    __slots__ = (
        "_line",
        "agreement",
        "allow",
        "body",
        "embargo",
        "restrictive",
        "rule",
        "seq",
        "subject",
    )

    def __init__(self, rule: Rule, seq: int, subject: str, body: Body) -> None:
        self.rule = rule
        self.seq = seq
        self.subject = subject
        self.body = body
        self.allow = body.allow
        self.restrictive = body.restrictive
        self.agreement = body.agreement
        self.embargo = body.embargo
        self._line: PolicyLine | None = None

    @classmethod
    def read(cls, rule: Rule, seq: int = 0) -> CompiledLine:
        """Check and compile one stored rule (ValueError if ``PolicyLine.from_rule`` refuses it)."""
        kind, _, _, body = read_rule(rule)
        return cls(rule, seq, rule[0], _compiled_body(kind, body))

    @property
    def line(self) -> PolicyLine:
        """The PolicyLine this rule stands for (built on first use)."""
        if self._line is None:
            kind, name, domain, body = read_rule(self.rule)
            self._line = line_of(kind, name, domain, body)
        return self._line

    @property
    def purpose(self) -> str:
        """The line's purpose, or ``*``."""
        return self.body.purpose

    @property
    def rows(self) -> Filter | None:
        """The line's row rule, parsed."""
        return self.body.rows

    @property
    def has_columns_rule(self) -> bool:
        """Whether the line keeps or withholds columns."""
        return self.body.has_columns_rule

    def withholds(self, name: str, sensitivity: str, pspp: str) -> bool:
        """Whether this line withholds a column."""
        return self.body.withholds(name, sensitivity, pspp)


class Match(NamedTuple):
    """The lines that match a request: allows, outright denies and restrictive denies, each in
    policy order."""

    allows: tuple[CompiledLine, ...]
    denies: tuple[CompiledLine, ...]
    restricts: tuple[CompiledLine, ...]


_NO_MATCH = Match((), (), ())


_by_seq = operator.attrgetter("seq")


def _merge(parts: list[Match]) -> Match:
    allows: list[CompiledLine] = []
    denies: list[CompiledLine] = []
    restricts: list[CompiledLine] = []
    mixed = [0, 0, 0]
    for a, d, r in parts:
        if a:
            allows += a
            mixed[0] += 1
        if d:
            denies += d
            mixed[1] += 1
        if r:
            restricts += r
            mixed[2] += 1
    for found, count in zip((allows, denies, restricts), mixed, strict=True):
        if count > 1:
            found.sort(key=_by_seq)
    return Match(tuple(allows), tuple(denies), tuple(restricts))


def _leaf(lines: list[CompiledLine]) -> Match:
    if len(lines) == 1:
        x = lines[0]
        one = (x,)
        return (
            Match(one, (), ())
            if x.allow
            else Match((), (), one)
            if x.restrictive
            else Match((), one, ())
        )
    allows: list[CompiledLine] = []
    denies: list[CompiledLine] = []
    restricts: list[CompiledLine] = []
    for x in lines:
        (allows if x.allow else restricts if x.restrictive else denies).append(x)
    return Match(tuple(allows), tuple(denies), tuple(restricts))


@functools.lru_cache(maxsize=1 << 16)
def dataset_keys(name: str) -> tuple[str, ...]:
    """The dataset patterns a name can match: itself, ``prefix*`` at each separator, ``*``."""
    keys = [name]
    keys += [name[: i + 1] + "*" for i, c in enumerate(name) if c in _SEPARATORS]
    keys.append("*")
    return tuple(dict.fromkeys(keys))


# action -> subject -> purpose -> dataset pattern -> lines
_Index = dict[str, dict[str, dict[str, dict[str, Match]]]]
_ANY = ""  # the purpose key of discover's leaves, which hold the lines of every purpose


def _by_purpose(
    grouped: dict[str, dict[str, list[CompiledLine]]], any_purpose: bool
) -> dict[str, dict[str, Match]]:
    """One subject's leaves: for each purpose it names, its lines and the ``*`` lines together
    (so a request looks up one purpose, or ``*`` when the subject names not its own); for
    discover, every purpose's lines under one key."""

    def leaves(sources: list[dict[str, list[CompiledLine]]]) -> dict[str, Match]:
        patterns = dict.fromkeys(p for src in sources for p in src)
        out = {}
        for pattern in patterns:
            found = [x for src in sources for x in src.get(pattern, ())]
            if len(sources) > 1:
                found.sort(key=_by_seq)
            out[pattern] = _leaf(found)
        return out

    if any_purpose:
        return {_ANY: leaves(list(grouped.values()))}
    star = grouped.get("*")
    out = {"*": leaves([star])} if star is not None else {}
    for purpose, by_pattern in grouped.items():
        if purpose != "*":
            out[purpose] = leaves([by_pattern, star] if star is not None else [by_pattern])
    return out


class _Domain:
    """The lines of one domain and their index; kept across versions while they do not change."""

    __slots__ = ("_set", "index", "lines", "rules")

    def __init__(self, rules: tuple[Rule, ...], known: dict[Rule, CompiledLine]) -> None:
        self.rules = rules
        self._set: frozenset[Rule] | None = None
        self.lines: list[CompiledLine] = []
        grouped: dict[str, dict[str, dict[str, dict[str, list[CompiledLine]]]]] = {}
        if rules:
            read_domain(rules[0][1] if len(rules[0]) > 1 else "")
        for seq, rule in enumerate(rules):
            line = known.get(rule)
            if line is None or line.seq != seq:
                kind, _ = read_subject(rule[0])
                body = _compiled_body(kind, rule_body(rule))
                line = CompiledLine(rule, seq, rule[0], body)
            else:
                body = line.body
            self.lines.append(line)
            for action in body.actions:
                by_purpose = grouped.setdefault(action, {}).setdefault(line.subject, {})
                by_purpose.setdefault(body.purpose, {}).setdefault(body.dataset, []).append(line)
        self.index: _Index = {
            action: {
                subject: _by_purpose(by_purpose, action == _DISCOVER)
                for subject, by_purpose in by_subject.items()
            }
            for action, by_subject in grouped.items()
        }

    def rule_set(self) -> frozenset[Rule]:
        """The domain's rules as a set (built on first use)."""
        if self._set is None:
            self._set = frozenset(self.rules)
        return self._set


class CompiledPolicy:
    """The rules of one policy version, indexed for matching."""

    def __init__(
        self,
        version: int,
        p_rules: Iterable[Rule],
        g_rules: Iterable[Rule],
        previous: CompiledPolicy | None = None,
    ) -> None:
        # Compiling allocates a few hundred thousand long-lived objects: the cyclic collector
        # would walk them again and again while they are made (they hold no cycles).
        paused = gc.isenabled()
        gc.disable()
        try:
            self._compile(version, p_rules, g_rules, previous)
        finally:
            if paused:
                gc.enable()

    def _compile(
        self,
        version: int,
        p_rules: Iterable[Rule],
        g_rules: Iterable[Rule],
        previous: CompiledPolicy | None,
    ) -> None:
        self.version = version
        by_domain: dict[str, dict[Rule, None]] = {}
        for rule in p_rules:
            key = rule if isinstance(rule, tuple) else tuple(rule)
            by_domain.setdefault(key[1] if len(key) > 1 else "", {})[key] = None
        before = previous._domains if previous is not None else {}
        self._domains: dict[str, _Domain] = {}
        for domain, keyed in by_domain.items():
            rules = tuple(keyed)
            old = before.get(domain)
            if old is not None and old.rules == rules:
                self._domains[domain] = old  # unchanged since the previous version
            else:
                known = {line.rule: line for line in old.lines} if old is not None else {}
                self._domains[domain] = _Domain(rules, known)
        g_list = [tuple(r) for r in g_rules]
        self.g_rules = tuple(dict.fromkeys(g_list))
        roles: dict[tuple[str, str], set[str]] = {}
        for rule in self.g_rules:
            member, role, domain = read_assignment(rule)
            roles.setdefault((domain, member), set()).add(role)
        self._roles = {k: frozenset(v) for k, v in roles.items()}
        # Column and row shapes per set of matched lines, filled by ``evaluate`` on first use.
        self.shapes: dict[tuple[Any, ...], Any] = {}
        # Role resolution of this version, per principal and domain, filled on first use.
        self._subjects: dict[tuple[str, str, frozenset[str], str], frozenset[str]] = {}

    # -- what the version holds ------------------------------------------------------------------

    @property
    def p_rules(self) -> list[Rule]:
        """Every ``p`` rule, domain by domain, in policy order."""
        return [r for d in self._domains.values() for r in d.rules]

    @functools.cached_property
    def lines(self) -> tuple[PolicyLine, ...]:
        """Every policy line (built on first use: a listing, not a decision, needs them)."""
        return tuple(line.line for d in self._domains.values() for line in d.lines)

    @functools.cached_property
    def assignments(self) -> tuple[RoleAssignment, ...]:
        """Every role assignment."""
        return tuple(RoleAssignment.from_rule(r) for r in self.g_rules)

    def lines_of(self, domain: str) -> tuple[PolicyLine, ...]:
        """The policy lines of one domain."""
        found = self._domains.get(domain)
        return tuple(line.line for line in found.lines) if found is not None else ()

    def assignments_of(self, domain: str) -> tuple[RoleAssignment, ...]:
        """The role assignments of one domain."""
        return tuple(
            RoleAssignment.from_rule(r) for r in self.g_rules if read_assignment(r)[2] == domain
        )

    def holds(self, ptype: str, rule: Rule) -> bool:
        """Whether the version holds this ``p`` or ``g`` rule."""
        if ptype == "g":
            return rule in self._g_set
        found = self._domains.get(rule[1]) if len(rule) > 1 else None
        return found is not None and rule in found.rule_set()

    @functools.cached_property
    def _g_set(self) -> frozenset[Rule]:
        return frozenset(self.g_rules)

    @property
    def empty(self) -> bool:
        """Whether the version holds no rule at all."""
        return not self._domains and not self.g_rules

    # -- matching ---------------------------------------------------------------------------------

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
        found = self._domains.get(domain)
        if found is None:
            return _NO_MATCH
        by_subject = found.index.get(action)
        if not by_subject:
            return _NO_MATCH
        keys = dataset_keys(dataset)
        any_purpose = action == _DISCOVER
        wanted = _ANY if any_purpose else purpose
        parts: list[Match] = []
        for subject in self.subjects(principal, domain):
            by_purpose = by_subject.get(subject)
            if by_purpose is None:
                continue
            bucket = by_purpose.get(wanted)
            if bucket is None:
                if any_purpose:
                    continue
                bucket = by_purpose.get("*")
                if bucket is None:
                    continue
            for key in keys:
                hit = bucket.get(key)
                if hit is not None:
                    parts.append(hit)
        if not parts:
            return _NO_MATCH
        return parts[0] if len(parts) == 1 else _merge(parts)

    def allows(
        self, principal: Principal, domain: str, dataset: str, action: str, purpose: str
    ) -> bool:
        """The bare Casbin answer (no licence, embargo or agreement): for the agreement test."""
        m = self.match(principal, domain, dataset, action, purpose)
        return bool(m.allows) and not m.denies


def forget() -> None:
    """Drop the process-wide caches of checked and compiled rule parts (benchmarks time a cold
    start with it)."""
    forget_rules()
    _compiled_body.cache_clear()
    _parse_rows.cache_clear()
    dataset_keys.cache_clear()
