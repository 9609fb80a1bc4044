"""Alembic environment: runs against the engine the node passes in (or MATGATE_DATABASE_URL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from gateway.migrations import include_name, target_metadata

config = context.config


def _engine() -> sa.Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    from gateway.settings import Settings

    return sa.create_engine(Settings().resolved_database_url())


def run_migrations_online() -> None:
    """Run the migrations on a live connection."""
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata(),
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
