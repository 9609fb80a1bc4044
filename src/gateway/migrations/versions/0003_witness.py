"""witness cosignatures of this log's checkpoints, and the peer checkpoints this node cosigned

Revision ID: 0003_witness
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_witness"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "audit_cosignatures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("witness", sa.String(length=255), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("time", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("size", "root", "witness", name="uq_audit_cosignatures"),
    )
    with op.batch_alter_table("audit_cosignatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_cosignatures_size"), ["size"], unique=False)
    op.create_table(
        "audit_witnessed",
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("time", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("origin"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("audit_witnessed")
    with op.batch_alter_table("audit_cosignatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_cosignatures_size"))
    op.drop_table("audit_cosignatures")
