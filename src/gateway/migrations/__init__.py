"""Alembic migrations of the node database (catalog, provenance, policies, audit, lineage)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

__all__ = ["alembic_config", "include_name", "migrate", "target_metadata"]

HERE = Path(__file__).resolve().parent


def target_metadata() -> list[sa.MetaData]:
    """The metadata of every room that keeps tables in the node database."""
    from audit.store import metadata as audit_metadata
    from gateway.db import metadata as gateway_metadata
    from policies.store import metadata as policies_metadata

    return [gateway_metadata, policies_metadata, audit_metadata]


# Search structures no SQLAlchemy model describes: SQLite's FTS5 table (and its shadow tables)
# (revision 0006), PostgreSQL's stored text vector and its index (revision 0007); comparisons
# with the models skip them.
_UNMODELLED = ("catalog_fts", "ix_catalog_datasets_search", "search_vector")


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Whether a database object is one the models describe (for autogenerate comparisons)."""
    return not (name or "").startswith(_UNMODELLED)


def alembic_config(engine: sa.Engine | None = None) -> Config:
    """An Alembic config pointing at these migrations (and at ``engine``, if given)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def migrate(engine: sa.Engine) -> None:
    """Bring the node database to the newest schema."""
    command.upgrade(alembic_config(engine), "head")
