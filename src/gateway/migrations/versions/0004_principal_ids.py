"""principal ids qualified by their issuer: subject@institution becomes institution:subject

Revision ID: 0004_principal_ids
Revises: 0003_witness
Create Date: 2026-12-02 03:25:00

Policy lines and role grants naming a user, acceptances of agreements and the owners of jobs
named principals ``subject@institution``. They now name ``namespace:subject``; the namespace of
the node's own issuer and of a peer's users is their institution, so ``bob@kyoto`` becomes
``kyoto:bob``. Users of an issuer given another namespace in the config must be renamed by a
steward (the old name no longer matches anyone, so nothing is granted by mistake). The audit
log and signed manifests are history and keep the names they were written with.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0004_principal_ids"
down_revision = "0003_witness"
branch_labels = None
depends_on = None

_OLD = re.compile(
    r"^(?P<sub>[A-Za-z0-9][A-Za-z0-9_.+-]{0,127})@(?P<inst>[a-z0-9][a-z0-9_.-]{0,63})$"
)
_NEW = re.compile(
    r"^(?P<inst>[a-z0-9][a-z0-9_.-]{0,63}):(?P<sub>[A-Za-z0-9][A-Za-z0-9_.+-]{0,127})$"
)


def _qualify(old: str) -> str | None:
    m = _OLD.match(old)
    return f"{m['inst']}:{m['sub']}" if m else None


def _unqualify(new: str) -> str | None:
    m = _NEW.match(new)
    return f"{m['sub']}@{m['inst']}" if m else None


def _user(rename: Callable[[str], str | None]) -> Callable[[str], str | None]:
    def inner(value: str) -> str | None:
        if not value.startswith("user:"):
            return None
        renamed = rename(value.removeprefix("user:"))
        return None if renamed is None else f"user:{renamed}"

    return inner


def _rewrite(table: str, key: str, column: str, rename: Callable[[str], str | None]) -> None:
    conn = op.get_bind()
    t = sa.table(table, sa.column(key), sa.column(column))
    rows = conn.execute(sa.select(t.c[key], t.c[column])).all()
    for row_key, value in rows:
        renamed = rename(value) if isinstance(value, str) else None
        if renamed is not None:
            conn.execute(sa.update(t).where(t.c[key] == row_key).values({column: renamed}))


def _apply(rename: Callable[[str], str | None]) -> None:
    _rewrite("casbin_rule", "id", "v0", _user(rename))
    _rewrite("policy_acceptances", "id", "holder", _user(rename))
    _rewrite("policy_acceptances", "id", "accepted_by", rename)
    _rewrite("jobs", "id", "owner", rename)


def upgrade() -> None:
    """Apply this revision."""
    _apply(_qualify)


def downgrade() -> None:
    """Revert this revision."""
    _apply(_unqualify)
