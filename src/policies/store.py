"""The policy tables in the node database: Casbin rules, policy changes (versions), acceptances.

``metadata`` holds every table of this room; ``create_tables(engine)`` creates them (migrations
include ``metadata`` too). Casbin's SQLAlchemy adapter reads and writes ``casbin_rule`` through the
``CasbinRule`` mapping below, which has ten value columns because a policy line has ten fields.

Every change is written in one transaction that first takes this room's write lock
(``lock_policy``) and ends by calling the caller's ``Record`` hook on the same connection, so the
change and its audit entry commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "CasbinRule",
    "Record",
    "acceptances",
    "create_tables",
    "lock_policy",
    "metadata",
    "policy_changes",
    "stored_versions",
]

Record = Callable[[sa.Connection, Any], None]
"""Called with the open transaction and the change (a ``PolicyChange`` or an ``Acceptance``)
before it commits: whatever it writes commits with the change; if it raises, nothing does."""

metadata = sa.MetaData()
_VALUE = 1024


class _Base(DeclarativeBase):
    metadata = metadata


class CasbinRule(_Base):
    """One Casbin rule: ``ptype`` and its values ``v0`` .. ``v9``."""

    __tablename__ = "casbin_rule"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    ptype: Mapped[str] = mapped_column(sa.String(16), index=True)
    v0: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v1: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v2: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v3: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v4: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v5: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v6: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v7: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v8: Mapped[str | None] = mapped_column(sa.String(_VALUE))
    v9: Mapped[str | None] = mapped_column(sa.String(_VALUE))

    def values(self, count: int) -> list[str]:
        """The rule's first ``count`` values, None read as empty."""
        vals = [
            self.v0, self.v1, self.v2, self.v3, self.v4,
            self.v5, self.v6, self.v7, self.v8, self.v9,
        ]  # fmt: skip
        return ["" if v is None else v for v in vals[:count]]


policy_changes = sa.Table(
    "policy_changes",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("domain", sa.String(64), nullable=False),
    sa.Column("added", sa.JSON, nullable=False),
    sa.Column("removed", sa.JSON, nullable=False),
)

acceptances = sa.Table(
    "policy_acceptances",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agreement", sa.String(64), nullable=False, index=True),
    sa.Column("holder", sa.String(255), nullable=False, index=True),
    sa.Column("accepted_by", sa.String(255), nullable=False),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
)


def create_tables(engine: sa.Engine) -> None:
    """Create this room's tables when they do not exist."""
    metadata.create_all(engine)


def lock_policy(connection: sa.Connection) -> None:
    """Hold the policy write lock until the transaction of ``connection`` ends, so versions are
    numbered by one writer at a time across replicas (PostgreSQL: an advisory lock keyed by the
    ``policy_changes`` table; SQLite: the database's write lock, BEGIN IMMEDIATE)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(
            "SELECT pg_advisory_xact_lock('policy_changes'::regclass::oid::bigint)"
        )
    elif dialect == "sqlite":
        raw = connection.connection.driver_connection
        # pysqlite opens a transaction only before the first write: until then it is not in one
        if not getattr(raw, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


_VERSIONS = sa.select(
    sa.select(sa.func.max(policy_changes.c.version)).scalar_subquery(),
    sa.select(sa.func.max(acceptances.c.id)).scalar_subquery(),
)
_versions_sql: dict[str, str] = {}


def stored_versions(engine: sa.Engine) -> tuple[int, int]:
    """The newest policy version and acceptance id in the database, in one statement.

    Asked before every authenticated request (``Governance.sync``), so it goes to the driver
    directly: on SQLite a read of the shared WAL index; on PostgreSQL (psycopg) one round trip
    in autocommit, so that no transaction is left to end after it."""
    dialect = engine.dialect.name
    sql = _versions_sql.get(dialect)
    if sql is None:
        sql = _versions_sql[dialect] = str(_VERSIONS.compile(dialect=engine.dialect))
    if dialect not in ("sqlite", "postgresql"):
        with engine.connect() as conn:
            row = conn.exec_driver_sql(sql).first()
        return (int(row[0] or 0), int(row[1] or 0)) if row is not None else (0, 0)
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        manual = dialect == "postgresql" and not driver.autocommit
        if manual:
            driver.autocommit = True  # psycopg: a client-side switch while idle
        try:
            cur = driver.cursor()
            cur.execute(sql)
            found = cur.fetchone()
            cur.close()
        finally:
            if manual:
                driver.autocommit = False
    finally:
        raw.close()
    return (int(found[0] or 0), int(found[1] or 0)) if found is not None else (0, 0)
