"""catalog search in the catalog's order: filters indexed with the place, a stored text vector

Revision ID: 0007_catalog_order
Revises: 0006_catalog_search
Create Date: 2026-12-02 12:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007_catalog_order"
down_revision = "0006_catalog_search"
branch_labels = None
depends_on = None

# A search by institution or licence reads its matches in the catalog's order from an index of
# (value, seq) and stops at its page, instead of collecting every match to sort it. On
# PostgreSQL the words of each row are kept as a stored tsvector: a plan that walks the
# catalog's order tests each row against it instead of running to_tsvector on the row's text.


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("catalog_datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_datasets_institution")
        batch_op.drop_index("ix_catalog_datasets_license_key")
        batch_op.create_index(
            "ix_catalog_datasets_institution_seq", ["institution", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_catalog_datasets_license_seq", ["license_key", "seq"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_datasets_search")
        op.execute(
            "ALTER TABLE catalog_datasets ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple', coalesce(search_text, ''))) STORED"
        )
        op.execute(
            "CREATE INDEX ix_catalog_datasets_search_vector ON catalog_datasets "
            "USING gin (search_vector)"
        )
        op.execute("ANALYZE catalog_datasets")


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_datasets_search_vector")
        op.execute("ALTER TABLE catalog_datasets DROP COLUMN IF EXISTS search_vector")
        op.execute(
            "CREATE INDEX ix_catalog_datasets_search ON catalog_datasets "
            "USING gin (to_tsvector('simple', search_text))"
        )
    with op.batch_alter_table("catalog_datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_datasets_license_seq")
        batch_op.drop_index("ix_catalog_datasets_institution_seq")
        batch_op.create_index("ix_catalog_datasets_license_key", ["license_key"], unique=False)
        batch_op.create_index("ix_catalog_datasets_institution", ["institution"], unique=False)
