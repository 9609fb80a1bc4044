"""catalog search: the columns an index searches, SQLite FTS5 and a PostgreSQL text index

Revision ID: 0006_catalog_search
Revises: 0005_shares
Create Date: 2026-12-02 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_catalog_search"
down_revision = "0005_shares"
branch_labels = None
depends_on = None

# Rows written before this revision get their search columns from the node at start-up
# (gateway.catalog.Catalog.reindex): the words are split in Python, the same for both databases.


def upgrade() -> None:
    """Apply this revision."""
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("catalog_datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("license_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("roles", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("units", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("column_names", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_catalog_datasets_license_key"), ["license_key"], unique=False
        )
    # existing entries keep the order they were registered in, as far as the database knows it
    if dialect == "postgresql":
        op.execute("CREATE SEQUENCE catalog_datasets_seq")
        op.execute(
            "UPDATE catalog_datasets SET seq = o.n FROM (SELECT k, "
            "nextval('catalog_datasets_seq') AS n FROM (SELECT id AS k FROM catalog_datasets "
            "ORDER BY registered_at, id) AS s) AS o WHERE catalog_datasets.id = o.k"
        )
    else:
        op.execute(
            "UPDATE catalog_datasets SET seq = (SELECT count(*) FROM catalog_datasets AS o "
            "WHERE o.registered_at < catalog_datasets.registered_at OR "
            "(o.registered_at = catalog_datasets.registered_at AND o.id <= catalog_datasets.id))"
        )
    with op.batch_alter_table("catalog_datasets", schema=None) as batch_op:
        batch_op.create_index("ix_catalog_datasets_seq", ["seq"], unique=True)
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE catalog_fts USING fts5("
            "dataset_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 0', "
            "prefix = '1 2 3')"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE INDEX ix_catalog_datasets_search ON catalog_datasets "
            "USING gin (to_tsvector('simple', search_text))"
        )


def downgrade() -> None:
    """Revert this revision."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS catalog_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_datasets_search")
    with op.batch_alter_table("catalog_datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_datasets_seq")
        batch_op.drop_column("seq")
        batch_op.drop_index(batch_op.f("ix_catalog_datasets_license_key"))
        batch_op.drop_column("search_text")
        batch_op.drop_column("column_names")
        batch_op.drop_column("units")
        batch_op.drop_column("roles")
        batch_op.drop_column("license_key")
        batch_op.drop_column("digest")
    if dialect == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS catalog_datasets_seq")
