"""The promotion journal: queued files waiting for their promotion to public storage.

Revision ID: sa_depot_0003
Revises: sa_depot_0002
Create Date: 2026-11-30

One row per file stored in a queue storage by a column declared with ``promote_to`` (see
docs/promotion.md), written in the transaction that stores the row holding it and deleted
when the promotion commits.

The session lifecycle creates this table itself when it needs it and it is missing (an
application that upgraded sa_depot before running this migration): the upgrade then leaves
the table it finds as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sa_depot_0003"
down_revision = "sa_depot_0002"
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    if op.get_context().as_sql:  # offline (--sql): the script creates every table
        return True
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if not _missing("sa_depot_promotions"):
        return
    op.create_table(
        "sa_depot_promotions",
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("table_name", sa.String(length=128), nullable=False),
        sa.Column("column_name", sa.String(length=128), nullable=False),
        sa.Column("row_key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("path"),
    )
    op.create_index(
        "ix_sa_depot_promotions_state", "sa_depot_promotions", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_sa_depot_promotions_state", "sa_depot_promotions")
    op.drop_table("sa_depot_promotions")
