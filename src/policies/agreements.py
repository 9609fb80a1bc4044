"""Terms of use and their acceptances: who accepted what, when, and until when it holds.

Agreements are defined in the node config, scoped to one dataset or to every dataset of an
institution. A person accepts for themself; a steward may accept for their whole institution.
Acceptances are stored in ``policy_acceptances``; this book keeps a snapshot for fast checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from connectors.datasets import Dataset
from policies.config import AgreementSpec
from policies.errors import PolicyUnavailable, PolicyValidationError, UnknownAgreement
from policies.principals import Principal
from policies.store import Record, acceptances, lock_policy

__all__ = ["Acceptance", "AgreementBook"]


@dataclass(frozen=True, slots=True)
class Acceptance:
    """An acceptance of an agreement by a user (``user:...``) or institution (``inst:...``)."""

    name = "agreement-accepted"

    agreement: str
    holder: str
    accepted_by: str
    accepted_at: dt.datetime
    valid_until: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the audit log."""
        return {
            "event": self.name,
            "agreement": self.agreement,
            "holder": self.holder,
            "accepted_by": self.accepted_by,
            "accepted_at": self.accepted_at.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }

    def holds(self, now: dt.datetime) -> bool:
        """Whether the acceptance is in force at ``now``."""
        return self.accepted_at <= now and (self.valid_until is None or now < self.valid_until)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every instant stored here is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class AgreementBook:
    """The node's agreements and a snapshot of their acceptances."""

    def __init__(self, engine: sa.Engine, specs: Iterable[AgreementSpec]) -> None:
        self._engine = engine
        self.specs = {s.id: s for s in specs}
        self._held: dict[tuple[str, str], list[Acceptance]] = {}
        self.generation = 0

    def spec(self, agreement_id: str) -> AgreementSpec:
        """The agreement with this id; UnknownAgreement if there is none."""
        try:
            return self.specs[agreement_id]
        except KeyError:
            raise UnknownAgreement(f"no agreement {agreement_id!r}") from None

    def for_dataset(self, dataset: Dataset) -> list[AgreementSpec]:
        """The agreements that cover ``dataset``."""
        return [
            s
            for s in self.specs.values()
            if s.dataset == dataset.id or s.institution == dataset.institution
        ]

    def load(self) -> int:
        """Reload the acceptance snapshot; return the newest acceptance id (a generation)."""
        held: dict[tuple[str, str], list[Acceptance]] = {}
        newest = 0
        with self._engine.connect() as conn:
            for row in conn.execute(sa.select(acceptances)):
                acc = Acceptance(
                    row.agreement,
                    row.holder,
                    row.accepted_by,
                    _aware(row.accepted_at),
                    _aware(row.valid_until) if row.valid_until else None,
                )
                held.setdefault((acc.agreement, acc.holder), []).append(acc)
                newest = max(newest, row.id)
        self._held = held
        self.generation = newest
        return newest

    def stored_generation(self) -> int:
        """The newest acceptance id in the database."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(acceptances.c.id))).scalar() or 0)

    def accept(
        self,
        principal: Principal,
        agreement_id: str,
        now: dt.datetime,
        institution: bool,
        record: Record | None = None,
    ) -> Acceptance:
        """Record that ``principal`` (or its whole institution) accepts the agreement; ``record``
        runs in the same transaction, and the acceptance holds only once both committed."""
        spec = self.spec(agreement_id)
        if spec.valid_from is not None and now < spec.valid_from:
            raise PolicyValidationError(
                f"agreement {agreement_id!r} applies from {spec.valid_from}"
            )
        if spec.valid_until is not None and now >= spec.valid_until:
            raise PolicyValidationError(f"agreement {agreement_id!r} expired {spec.valid_until}")
        until = spec.valid_until
        if spec.acceptance_days is not None:
            own = now + dt.timedelta(days=spec.acceptance_days)
            until = own if until is None else min(until, own)
        holder = f"inst:{principal.institution}" if institution else f"user:{principal.id}"
        acc = Acceptance(agreement_id, holder, principal.id, now, until)
        try:
            self._insert(acc, record)
        except sa.exc.SQLAlchemyError as exc:
            raise PolicyUnavailable(
                f"the acceptance was not committed: {exc.__class__.__name__}"
            ) from exc
        self.load()  # committed: only now does the acceptance hold
        return acc

    def _insert(self, acc: Acceptance, record: Record | None) -> None:
        with self._engine.begin() as conn:
            lock_policy(conn)
            conn.execute(
                sa.insert(acceptances),
                [
                    {
                        "agreement": acc.agreement,
                        "holder": acc.holder,
                        "accepted_by": acc.accepted_by,
                        "accepted_at": acc.accepted_at,
                        "valid_until": acc.valid_until,
                    }
                ],
            )
            if record is not None:
                record(conn, acc)

    def acceptances(self, agreement_ids: Iterable[str], limit: int) -> list[Acceptance]:
        """Stored acceptances of these agreements, newest first (at most ``limit``)."""
        ids = list(agreement_ids)
        if not ids:
            return []
        query = (
            sa.select(acceptances)
            .where(acceptances.c.agreement.in_(ids))
            .order_by(acceptances.c.accepted_at.desc(), acceptances.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [
                Acceptance(
                    row.agreement,
                    row.holder,
                    row.accepted_by,
                    _aware(row.accepted_at),
                    _aware(row.valid_until) if row.valid_until else None,
                )
                for row in conn.execute(query)
            ]

    def acceptable(self, agreement_id: str, now: dt.datetime) -> bool:
        """Whether the agreement exists and may be accepted at ``now``."""
        spec = self.specs.get(agreement_id)
        return (
            spec is not None
            and (spec.valid_from is None or spec.valid_from <= now)
            and (spec.valid_until is None or now < spec.valid_until)
        )

    def check(self, agreement_id: str, principal: Principal, now: dt.datetime) -> str | None:
        """Why ``principal`` is not covered by an acceptance in force, or None when it is."""
        spec = self.specs.get(agreement_id)
        if spec is None:
            return f"agreement {agreement_id!r} is not defined"
        if spec.valid_from is not None and now < spec.valid_from:
            return f"agreement {agreement_id!r} applies only from {spec.valid_from.isoformat()}"
        if spec.valid_until is not None and now >= spec.valid_until:
            return f"agreement {agreement_id!r} expired on {spec.valid_until.isoformat()}"
        found = False
        for holder in (f"user:{principal.id}", f"inst:{principal.institution}"):
            for acc in self._held.get((agreement_id, holder), ()):
                found = True
                if acc.holds(now):
                    return None
        if found:
            return f"the acceptance of agreement {agreement_id!r} has expired"
        return f"agreement {agreement_id!r} has not been accepted"

    def boundaries(self, agreement_id: str, principal: Principal) -> list[dt.datetime]:
        """Instants at which the answer of ``check`` may change (for cache expiry)."""
        out: list[dt.datetime] = []
        spec = self.specs.get(agreement_id)
        if spec is not None:
            out += [t for t in (spec.valid_from, spec.valid_until) if t is not None]
        for holder in (f"user:{principal.id}", f"inst:{principal.institution}"):
            for acc in self._held.get((agreement_id, holder), ()):
                out += [t for t in (acc.accepted_at, acc.valid_until) if t is not None]
        return out
