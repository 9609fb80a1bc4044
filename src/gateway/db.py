"""The node database: engine creation and the gateway's own tables (catalog, jobs, shares).

Other rooms keep their tables on metadata of their own (``policies.store.metadata``,
``audit.store.metadata``); Alembic migrates them all (see ``gateway/migrations``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["catalog_table", "create_engine", "jobs_table", "metadata", "shares_table"]

metadata = sa.MetaData()

catalog_table = sa.Table(
    "catalog_datasets",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("institution", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("registered_by", sa.String(300), nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    # What the search reads (gateway.catalog_search.index_row); NULL in rows written before
    # revision 0006 until the node fills them in at start-up.
    # Its place in the catalog's order (registration order; kept when the entry is replaced):
    # pages are keyed on it, and SQLite's FTS5 rows share it as their rowid.
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("license_key", sa.String(200), nullable=True),
    sa.Column("roles", sa.Integer, nullable=True),
    sa.Column("units", sa.Text, nullable=True),
    sa.Column("column_names", sa.Text, nullable=True),
    sa.Column("search_text", sa.Text, nullable=True),
    sa.Index("ix_catalog_datasets_seq", "seq", unique=True),
    # an institution's or a licence's entries in the catalog's order: a page stops at its end
    sa.Index("ix_catalog_datasets_institution_seq", "institution", "seq"),
    sa.Index("ix_catalog_datasets_license_seq", "license_key", "seq"),
)


jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(300), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(64), nullable=False, default=""),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("artifact", sa.LargeBinary, nullable=True),
)


shares_table = sa.Table(
    "delta_shares",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("changed_by", sa.String(300), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for the node database; SQLite gets WAL and a busy timeout for concurrency."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine
