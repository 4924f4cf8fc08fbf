"""The file registry (which rows use which stored files) and adoption progress.

Revision ID: sa_depot_0002
Revises: sa_depot_0001
Create Date: 2026-11-30

Existing rows are not registered by this revision: their files stay safe (a row letting go
of an unregistered file leaves it to the collector) until an adoption registers them, e.g.
in a migration of the application's own, after this one::

    from sa_depot.migrate import adopt_column

    def upgrade():
        adopt_column(op.get_bind(), "documents", "content")

or with ``sa-depot adopt`` (see docs/alembic.md).

The session lifecycle creates these tables itself when it needs them and they are missing
(an application that upgraded sa_depot before running this migration): the upgrade then
leaves the tables it finds as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sa_depot_0002"
down_revision = "sa_depot_0001"
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    if op.get_context().as_sql:  # offline (--sql): the script creates every table
        return True
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("sa_depot_files"):
        _create_files()
    if _missing("sa_depot_attachments"):
        _create_attachments()
    if _missing("sa_depot_adoptions"):
        _create_adoptions()


def _create_files() -> None:
    op.create_table(
        "sa_depot_files",
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("storage", sa.String(length=128), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )


def _create_attachments() -> None:
    op.create_table(
        "sa_depot_attachments",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("table_name", sa.String(length=128), nullable=False),
        sa.Column("column_name", sa.String(length=128), nullable=False),
        sa.Column("row_key", sa.String(length=255), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_sa_depot_attachments_path", "sa_depot_attachments", ["path"])


def _create_adoptions() -> None:
    op.create_table(
        "sa_depot_adoptions",
        sa.Column("table_name", sa.String(length=128), nullable=False),
        sa.Column("column_name", sa.String(length=128), nullable=False),
        sa.Column("last_row_key", sa.Text(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "column_name"),
    )


def downgrade() -> None:
    op.drop_table("sa_depot_adoptions")
    op.drop_index("ix_sa_depot_attachments_path", "sa_depot_attachments")
    op.drop_table("sa_depot_attachments")
    op.drop_table("sa_depot_files")
