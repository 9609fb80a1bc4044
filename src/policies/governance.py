"""The governance service of a node: decisions, the catalog filter, stewards' policy edits.

``Governance`` owns the Casbin store, the compiled policy of the current version, the decision
cache (dropped on every version change, acceptance and watcher message) and the agreement book.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from connectors.datasets import Dataset
from policies.agreements import Acceptance, AgreementBook
from policies.compiled import CompiledPolicy
from policies.config import AgreementSpec, PolicyConfig
from policies.decisions import Action, Decision
from policies.enforcer import CasbinStore
from policies.errors import (
    PolicyConflict,
    PolicyForbidden,
    PolicyUnavailable,
    PolicyValidationError,
)
from policies.evaluate import Context, evaluate
from policies.licences import Licence, LicenceRegistry
from policies.lines import DOMAIN_ACTIONS, PolicyLine, RoleAssignment, Rule
from policies.principals import Principal
from policies.store import Record, create_tables, stored_versions
from policies.validation import LineChecker, Registries, check_assignment
from policies.watcher import Watcher

__all__ = ["Governance", "PolicyChange", "Statement"]

Statement = PolicyLine | RoleAssignment
Clock = Callable[[], dt.datetime]
_CACHE_LIMIT = 200_000


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A recorded change of a domain's policy, creating a new policy version."""

    name = "policy-changed"

    version: int
    at: dt.datetime
    actor: str
    domain: str
    added: tuple[dict[str, Any], ...]
    removed: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the audit log."""
        return {
            "event": self.name,
            "version": self.version,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "domain": self.domain,
            "added": list(self.added),
            "removed": list(self.removed),
        }


def _entry(statement: Statement) -> tuple[str, Rule]:
    return (
        ("p", statement.to_rule())
        if isinstance(statement, PolicyLine)
        else ("g", statement.to_rule())
    )


def _json(statement: Statement) -> dict[str, Any]:
    kind = "line" if isinstance(statement, PolicyLine) else "assignment"
    return {"kind": kind, **statement.model_dump(mode="json", exclude_defaults=True)}


class Governance:
    """Decisions and policy administration for one node."""

    def __init__(
        self,
        engine: sa.Engine,
        config: PolicyConfig,
        *,
        clock: Clock | None = None,
        watcher: Watcher | None = None,
        cache: bool = True,
        mask_key: bytes = b"",
        mask_key_id: str = "",
    ) -> None:
        create_tables(engine)
        self._engine = engine
        self.config = config
        self._clock = clock or _utcnow
        self._store = CasbinStore(engine)
        self._book = AgreementBook(engine, config.agreements)
        self.licences = LicenceRegistry(Licence(**c.model_dump()) for c in config.licences)
        self.purposes = config.all_purposes
        self._registries = Registries(
            self.purposes, frozenset(config.roles), frozenset(self._book.specs)
        )
        # Hash masks are keyed by the node (see gateway.keys.MaskSecret); without a key, no
        # decision hands out a hashed column.
        self._ctx = Context(self.purposes, self.licences, self._book, mask_key, mask_key_id)
        # The datasets policy lines may name, by domain then name: this object's own, or a live
        # view of the node's catalog (``govern``) read only when a line is checked.
        self._own: dict[str, dict[str, Dataset]] = {}
        self._domains: Mapping[str, Mapping[str, Dataset]] = self._own
        self._lock = threading.RLock()
        self._cache_on = cache
        self._cache: dict[tuple[Any, ...], tuple[Dataset, Decision, dt.datetime | None]] = {}
        self._stale = False
        self._policy = self._load()
        self._watcher = watcher
        if watcher is not None:
            watcher.start(self._mark_stale)

    # -- state -------------------------------------------------------------------------------

    def _load(self, previous: CompiledPolicy | None = None) -> CompiledPolicy:
        version, p_rules, g_rules = self._store.load()
        self._book.load()
        return CompiledPolicy(version, p_rules, g_rules, previous)

    def _mark_stale(self) -> None:
        self._stale = True

    def _reload(self) -> None:
        with self._lock:
            self._stale = False
            self._policy = self._load(self._policy)
            self._cache = {}

    def _fresh(self) -> CompiledPolicy:
        if self._stale:
            self._reload()
        return self._policy

    def sync(self) -> int:
        """Reload if another replica changed the policy or acceptances; return the version."""
        if stored_versions(self._engine) != (self._policy.version, self._book.generation):
            self._reload()
        return self._policy.version

    def close(self) -> None:
        """Stop the watcher."""
        if self._watcher is not None:
            self._watcher.close()

    @property
    def version(self) -> int:
        """The policy version decisions are made with."""
        return self._fresh().version

    def admit(self, dataset: Dataset) -> None:
        """Refuse a dataset this policy cannot govern (an unknown licence); changes nothing."""
        self.licences.get(dataset.license)

    def register(self, dataset: Dataset) -> None:
        """Know a dataset (its licence must be registered; its agreements defined)."""
        self.admit(dataset)
        with self._lock:
            if self._domains is self._own:
                self._own.setdefault(dataset.institution, {})[dataset.name] = dataset
                if self._registries.datasets is None:
                    self._registries = replace(self._registries, datasets=self._own)
            self._cache = {}

    def govern(
        self, datasets: Mapping[str, Mapping[str, Dataset]], licences: Iterable[str]
    ) -> None:
        """Know every dataset of a catalog at once: ``datasets`` is a live view by domain, then
        name, read when a policy line is checked; each of their ``licences`` must be known."""
        for licence in licences:
            self.licences.get(licence)
        with self._lock:
            self._domains = datasets
            self._registries = replace(self._registries, datasets=datasets)
            self._cache = {}

    def seed(
        self, datasets: Iterable[Dataset], *, record: Record | None = None
    ) -> PolicyChange | None:
        """Register datasets and, on an empty store, write the config's seed policy (idempotent;
        ``record`` runs in the write's transaction)."""
        for ds in datasets:
            self.register(ds)
        policy = self._fresh()
        if policy.version or not policy.empty:
            return None
        statements: list[Statement] = [*self.config.assignments, *self.config.lines]
        if not statements:
            return None
        checker = LineChecker(self._registries)
        for st in statements:
            self._validate(st, checker)
        try:
            return self._write("config", "*", statements, (), record, base=0)
        except PolicyConflict:
            self._reload()  # another replica seeded first: same lines, take theirs
            return None

    # -- decisions ----------------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        dataset: Dataset,
        action: Action | str,
        purpose: str,
        columns: Sequence[str] | None = None,
    ) -> Decision:
        """Whether ``principal`` may do ``action`` on ``dataset`` for ``purpose``, and how."""
        if self._stale:
            self._reload()
        # The hit path is kept short: repeated decisions are the common case in a busy node.
        # Datasets are keyed by identity; the entry holds the dataset, so its id stays unique.
        key = (
            principal.id, principal.institution, principal.roles, id(dataset), action,
            purpose, None if columns is None else tuple(columns),
        )  # fmt: skip
        hit = self._cache.get(key)
        if hit is not None and hit[0] is dataset and (hit[2] is None or self._clock() < hit[2]):
            return hit[1]
        act = action if isinstance(action, Action) else Action(action)
        if act in DOMAIN_ACTIONS:
            return self.check_domain(principal, dataset.institution, act)
        policy = self._policy
        decision, expires = evaluate(
            self._ctx, policy, principal, dataset, act, purpose, columns, self._clock()
        )
        if self._cache_on and policy is self._policy:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {}
            self._cache[key] = (dataset, decision, expires)
        return decision

    def discoverable(self, principal: Principal, datasets: Iterable[Dataset]) -> list[Dataset]:
        """The datasets ``principal`` may see in the catalog."""
        return [ds for ds in datasets if self.decide(principal, ds, Action.DISCOVER, "*").allowed]

    def check_domain(self, principal: Principal, domain: str, action: Action | str) -> Decision:
        """Whether ``principal`` may manage or audit ``domain``."""
        act = Action(action)
        policy = self._fresh()
        if act not in DOMAIN_ACTIONS:
            raise PolicyValidationError(f"{act.value} is not a domain action (manage, audit)")
        m = policy.match(principal, domain, "*", act.value, "*")
        rules = tuple(line.rule for line in (*m.allows, *m.denies))
        if m.denies:
            reasons = tuple(f"denied by policy line {', '.join(x.rule[:6])}" for x in m.denies)
            return Decision(False, act, "*", domain, reasons, policy.version, matched=rules)
        if not m.allows:
            reason = f"no policy line allows {act.value} of domain {domain}"
            return Decision(False, act, "*", domain, (reason,), policy.version)
        reason = f"allowed by {len(m.allows)} policy line(s)"
        return Decision(True, act, "*", domain, (reason,), policy.version, matched=rules)

    def _require(self, principal: Principal, domain: str, action: Action) -> None:
        decision = self.check_domain(principal, domain, action)
        if not decision.allowed:
            raise PolicyForbidden(f"{principal.id} may not {action.value} domain {domain}")

    # -- stewards -----------------------------------------------------------------------------

    def lines(self, principal: Principal, domain: str) -> list[Statement]:
        """The policy lines and role assignments of ``domain`` (stewards and auditors)."""
        if not self.check_domain(principal, domain, Action.MANAGE).allowed:
            self._require(principal, domain, Action.AUDIT)
        policy = self._fresh()
        out: list[Statement] = [*policy.assignments_of(domain), *policy.lines_of(domain)]
        return out

    def _validate(self, statement: Statement, checker: LineChecker | None = None) -> None:
        if isinstance(statement, PolicyLine):
            reason = (checker or LineChecker(self._registries)).check(statement)
        else:
            reason = check_assignment(statement, self._registries)
        if reason is not None:
            raise PolicyValidationError(reason)

    def _checked(
        self,
        principal: Principal,
        domain: str,
        add: Sequence[Statement],
        remove: Sequence[Statement],
    ) -> None:
        self._require(principal, domain, Action.MANAGE)
        for st in (*add, *remove):
            if st.domain != domain:
                raise PolicyForbidden(f"a steward of {domain} may not edit domain {st.domain}")
        policy = self._fresh()
        seen: set[tuple[str, Rule]] = set()
        for st in add:
            self._validate(st)
            entry = _entry(st)
            if policy.holds(*entry) or entry in seen:
                raise PolicyValidationError(f"already present: {_json(st)}")
            seen.add(entry)
        for st in remove:
            if not policy.holds(*_entry(st)):
                raise PolicyValidationError(f"not present: {_json(st)}")

    def add_lines(
        self,
        principal: Principal,
        domain: str,
        lines: Sequence[Statement],
        *,
        record: Record | None = None,
    ) -> PolicyChange:
        """Add policy lines or role assignments to ``domain`` (validated; a new version, in force
        once it and what ``record`` writes in its transaction have committed)."""
        return self._edit(principal, domain, lines, (), record)

    def remove_lines(
        self,
        principal: Principal,
        domain: str,
        lines: Sequence[Statement],
        *,
        record: Record | None = None,
    ) -> PolicyChange:
        """Remove policy lines or role assignments from ``domain`` (a new version, as above)."""
        return self._edit(principal, domain, (), lines, record)

    def edit(
        self,
        principal: Principal,
        domain: str,
        *,
        add: Sequence[Statement] = (),
        remove: Sequence[Statement] = (),
        record: Record | None = None,
    ) -> PolicyChange:
        """Remove and add lines of ``domain`` as one change: one new version, all or nothing."""
        return self._edit(principal, domain, add, remove, record)

    def _edit(
        self,
        principal: Principal,
        domain: str,
        add: Sequence[Statement],
        remove: Sequence[Statement],
        record: Record | None,
    ) -> PolicyChange:
        # checked here against this replica's view, and again by the store under its lock
        self._checked(principal, domain, add, remove)
        return self._write(principal.id, domain, add, remove, record)

    def _write(
        self,
        actor: str,
        domain: str,
        add: Sequence[Statement],
        remove: Sequence[Statement],
        record: Record | None,
        *,
        base: int | None = None,
    ) -> PolicyChange:
        if not add and not remove:
            raise PolicyValidationError("a policy change needs at least one line")
        at = self._clock()
        added = tuple(_json(s) for s in add)
        removed = tuple(_json(s) for s in remove)
        row = {"at": at, "actor": actor, "domain": domain, "added": added, "removed": removed}
        made: list[PolicyChange] = []

        def then(conn: sa.Connection, version: int) -> None:
            made.append(PolicyChange(version, at, actor, domain, added, removed))
            if record is not None:
                record(conn, made[0])

        with self._lock:
            try:
                self._store.write(
                    [_entry(s) for s in add], [_entry(s) for s in remove], row, then, base=base
                )
            except sa.exc.SQLAlchemyError as exc:
                raise PolicyUnavailable(
                    f"the policy change was not committed: {exc.__class__.__name__}"
                ) from exc
            # committed: only now do the compiled policy, Casbin and the caches change
            self._reload()
        if self._watcher is not None:
            self._watcher.notify()
        return made[0]

    def dry_run(
        self,
        principal: Principal,
        domain: str,
        add: Sequence[Statement] = (),
        remove: Sequence[Statement] = (),
        datasets: Iterable[Dataset] | None = None,
        principals: Iterable[Principal] | None = None,
    ) -> list[dict[str, Any]]:
        """Who gains or loses which actions, columns and rows if the change were applied."""
        from policies.dryrun import impacts

        self._checked(principal, domain, add, remove)
        before = self._fresh()
        p_rules = before.p_rules
        g_rules = list(before.g_rules)
        for st in remove:
            (p_rules if isinstance(st, PolicyLine) else g_rules).remove(st.to_rule())
        for st in add:
            (p_rules if isinstance(st, PolicyLine) else g_rules).append(st.to_rule())
        after = CompiledPolicy(before.version + 1, p_rules, g_rules, before)
        known = datasets or self._domains.get(domain, {}).values()
        scope = [d for d in known if d.institution == domain]
        return impacts(self._ctx, before, after, scope, principals, self._clock())

    def history(self, principal: Principal, domain: str, limit: int = 100) -> list[PolicyChange]:
        """The recorded changes of ``domain``'s policy, newest first: who added and removed
        which lines in each version (stewards and auditors)."""
        if not self.check_domain(principal, domain, Action.MANAGE).allowed:
            self._require(principal, domain, Action.AUDIT)
        return [
            PolicyChange(
                int(row["version"]),
                row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=dt.UTC),
                str(row["actor"]),
                str(row["domain"]),
                tuple(row["added"] or ()),
                tuple(row["removed"] or ()),
            )
            for row in self._store.changes(domain, limit)
        ]

    # -- agreements ---------------------------------------------------------------------------

    def agreements(self, dataset: Dataset) -> list[AgreementSpec]:
        """The agreements that cover ``dataset``."""
        return self._book.for_dataset(dataset)

    def domain_agreements(
        self, principal: Principal, domain: str, limit: int = 500
    ) -> list[tuple[AgreementSpec, list[Acceptance]]]:
        """The agreements scoped to ``domain`` or its datasets, each with its acceptances,
        newest first (stewards and auditors of the domain)."""
        if not self.check_domain(principal, domain, Action.MANAGE).allowed:
            self._require(principal, domain, Action.AUDIT)
        specs = [
            s
            for s in self._book.specs.values()
            if s.institution == domain or (s.dataset or "").partition("/")[0] == domain
        ]
        found = self._book.acceptances((s.id for s in specs), limit)
        return [(s, [a for a in found if a.agreement == s.id]) for s in specs]

    def accept(
        self,
        principal: Principal,
        agreement_id: str,
        on_behalf_of_institution: bool = False,
        *,
        record: Record | None = None,
    ) -> Acceptance:
        """Record that ``principal`` (or, for a steward, their institution) accepts an agreement;
        it holds once it and what ``record`` writes in its transaction have committed."""
        if on_behalf_of_institution:
            self._require(principal, principal.institution, Action.MANAGE)
        acc = self._book.accept(
            principal, agreement_id, self._clock(), on_behalf_of_institution, record
        )
        with self._lock:
            self._cache = {}
        if self._watcher is not None:
            self._watcher.notify()
        return acc
