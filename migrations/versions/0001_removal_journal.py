"""The removal journal: files to remove once the transaction that unreferenced them commits.

Revision ID: sa_depot_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sa_depot_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sa_depot_pending_removals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("storage", sa.String(length=128), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sa_depot_pending_removals_path", "sa_depot_pending_removals", ["path"])
    op.create_index(
        "ix_sa_depot_pending_removals_scheduled_at",
        "sa_depot_pending_removals",
        ["scheduled_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_sa_depot_pending_removals_scheduled_at", "sa_depot_pending_removals")
    op.drop_index("ix_sa_depot_pending_removals_path", "sa_depot_pending_removals")
    op.drop_table("sa_depot_pending_removals")
