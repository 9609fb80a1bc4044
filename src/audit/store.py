"""The audit and lineage tables (one ``MetaData`` for Alembic) and the append-only guards.

On PostgreSQL and SQLite, triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) of audit
rows, whoever the database role is; ``grant_append_only`` also narrows a PostgreSQL role to
SELECT and INSERT, so even the table owner's tooling cannot rewrite history by accident.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = [
    "begin_immediate",
    "checkpoints",
    "cosignatures",
    "create_tables",
    "entries",
    "grant_append_only",
    "install_append_only_guard",
    "lock_log",
    "metadata",
    "run_inputs",
    "runs",
    "slices",
    "witnessed",
]

metadata = sa.MetaData()

entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False, default=""),
    sa.Column("principal", sa.String(255), nullable=False, default=""),
    sa.Column("institution", sa.String(255), nullable=False, default=""),
    sa.Column("dataset", sa.String(255), nullable=False, default=""),
    sa.Column("action", sa.String(40), nullable=False, default=""),
    sa.Column("purpose", sa.String(80), nullable=False, default=""),
    sa.Column("decision", sa.String(16), nullable=False, default=""),
    sa.Column("manifest_id", sa.String(128), nullable=True),
    # the exact canonical bytes that were hashed: verification hashes these, never a re-encoding
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Index("ix_audit_entries_time", "time"),
    sa.Index("ix_audit_entries_principal", "principal"),
    sa.Index("ix_audit_entries_dataset", "dataset"),
    sa.Index("ix_audit_entries_manifest", "manifest_id"),
)

checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("size", sa.BigInteger, nullable=False, index=True),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("kid", sa.String(255), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
)

# cosignatures that witnesses returned for this log's checkpoints (C2SP signature lines)
cosignatures = sa.Table(
    "audit_cosignatures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("size", sa.BigInteger, nullable=False, index=True),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("witness", sa.String(255), nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.UniqueConstraint("size", "root", "witness", name="uq_audit_cosignatures"),
)

# as a witness: the latest checkpoint cosigned for each peer log (by its C2SP origin)
witnessed = sa.Table(
    "audit_witnessed",
    metadata,
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
)

slices = sa.Table(
    "lineage_slices",
    metadata,
    sa.Column("manifest_id", sa.String(128), primary_key=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("dataset", sa.String(255), nullable=False, index=True),
    sa.Column("dataset_version", sa.String(80), nullable=False, default=""),
    sa.Column("principal", sa.String(255), nullable=False, index=True),
    sa.Column("purpose", sa.String(80), nullable=False, default=""),
    sa.Column("decision", sa.String(16), nullable=False, default=""),
    sa.Column("policy_version", sa.Integer, nullable=False, default=0),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("sha256", sa.String(64), nullable=False, default=""),
    sa.Column("licence", sa.String(80), nullable=False, default=""),
    sa.Column("time", sa.String(40), nullable=False, default=""),
    sa.Column("token", sa.Text, nullable=False),
)

runs = sa.Table(
    "lineage_runs",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("principal", sa.String(255), nullable=False, index=True),
    sa.Column("model_name", sa.String(255), nullable=False, index=True),
    sa.Column("model_version", sa.String(80), nullable=False),
    sa.Column("model_hash", sa.String(128), nullable=False, default=""),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("purpose", sa.String(80), nullable=False, default=""),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("audit_index", sa.BigInteger, nullable=False),
)

run_inputs = sa.Table(
    "lineage_run_inputs",
    metadata,
    sa.Column("run_id", sa.String(128), sa.ForeignKey("lineage_runs.run_id"), primary_key=True),
    sa.Column("manifest_id", sa.String(128), primary_key=True, index=True),
)

_GUARDED = ("audit_entries", "audit_checkpoints")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION matgate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _guard_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        out = [_PG_FUNCTION]
        for table in _GUARDED:
            out.append(
                f"CREATE OR REPLACE TRIGGER {table}_no_rewrite BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION matgate_audit_append_only()"
            )
            out.append(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION matgate_audit_append_only()"
            )
        return out
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: {op} refused'); END"
            for table in _GUARDED
            for op in ("UPDATE", "DELETE")
        ]
    return []


def install_append_only_guard(connection: sa.Connection) -> None:
    """Install the triggers refusing UPDATE/DELETE of audit rows (for migrations too)."""
    for statement in _guard_statements(connection.dialect.name):
        # through text() so the "%" of RAISE reaches the server intact on pyformat drivers
        connection.execute(sa.text(statement))


def _after_create(target: Any, connection: sa.Connection, **kw: Any) -> None:
    install_append_only_guard(connection)


sa.event.listen(metadata, "after_create", _after_create)


def create_tables(engine: sa.Engine) -> None:
    """Create the audit and lineage tables (if missing) and install the append-only guard."""
    metadata.create_all(engine)


def begin_immediate(connection: sa.Connection) -> None:
    """On SQLite, make the transaction of ``connection`` a write transaction now (BEGIN
    IMMEDIATE), unless a statement already made it one: its reads then see the last commit and no
    other writer can slip in before it commits. Elsewhere nothing."""
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    # pysqlite opens a transaction only before the first write: until then it is not in one
    if not getattr(raw, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_log(connection: sa.Connection) -> None:
    """Hold the log's append lock until the transaction of ``connection`` ends: one appender at a
    time across threads, processes and replicas, so the next index and the hash it chains to are
    read and written by one transaction alone (PostgreSQL: an advisory lock keyed by the entries
    table; SQLite: the database's write lock)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(
            "SELECT pg_advisory_xact_lock('audit_entries'::regclass::oid::bigint)"
        )
    elif dialect == "sqlite":
        begin_immediate(connection)
    else:  # not a node database here; serialise on the table itself
        connection.execute(sa.select(entries.c.idx).with_for_update().limit(1))


def grant_append_only(connection: sa.Connection, role: str) -> None:
    """Let a PostgreSQL ``role`` read and append audit rows, and nothing else."""
    if connection.dialect.name != "postgresql":
        return
    quoted = connection.dialect.identifier_preparer.quote(role)
    for table in _GUARDED:
        connection.exec_driver_sql(f"REVOKE ALL ON {table} FROM {quoted}")
        connection.exec_driver_sql(f"GRANT SELECT, INSERT ON {table} TO {quoted}")
    connection.exec_driver_sql(f"GRANT USAGE ON SEQUENCE audit_checkpoints_id_seq TO {quoted}")
    for table in ("lineage_slices", "lineage_runs", "lineage_run_inputs"):
        connection.exec_driver_sql(f"GRANT SELECT, INSERT ON {table} TO {quoted}")
