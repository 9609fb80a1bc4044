"""Alembic migrations: they build the whole node schema, in step with the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.migrations import include_name, migrate, target_metadata


def _no_drift(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diffs = compare_metadata(context, target_metadata())
    assert diffs == []


def test_sqlite_schema_matches_models(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    _no_drift(engine)


@pytest.mark.postgres
def test_postgres_schema_and_append_only_guard(pg_url):
    # A schema of its own: other tests of the session create tables in this database too.
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS migrations_test"))
    admin.dispose()
    engine = sa.create_engine(pg_url, connect_args={"options": "-csearch_path=migrations_test"})
    migrate(engine)
    _no_drift(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_entries (idx, time, name, request_id, principal, institution, "
                "dataset, action, purpose, decision, body, leaf_hash) VALUES (0, 't', 'x', '', '', "
                "'', '', '', '', '', :b, :h)"
            ),
            {"b": b"{}", "h": b"\0" * 32},
        )
    for statement in ("UPDATE audit_entries SET name = 'y'", "DELETE FROM audit_entries"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    engine.dispose()
