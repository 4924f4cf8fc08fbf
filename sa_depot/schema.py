"""The tables sa_depot keeps in your database, in a :class:`~sqlalchemy.MetaData` of their own.

Create them with sa_depot's Alembic migration or, without Alembic::

    from sa_depot.schema import metadata
    metadata.create_all(engine)

``sa_depot_pending_removals`` is the *removal journal*. When a flush replaces or deletes a file
(or an ORM-enabled ``update()``/``delete()`` does), the file's path is inserted here in the same
transaction as the change. After the commit the file is removed and its row deleted; if the
removal fails, or the process dies before it, the row stays (with ``attempts`` and
``last_error``) for the collector. A rolled-back transaction or savepoint takes its journal
rows with it, so the journal only ever lists files that no committed row references any more.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The MetaData holding every table of sa_depot's own schema.
metadata = sa.MetaData()

#: Longest ``'storage/file_id'`` path the journal stores (storage names are short, ids are
#: UUIDs for sa_depot's storages; backends with longer ids still fit).
PATH_LENGTH = 512

pending_removals = sa.Table(
    "sa_depot_pending_removals",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    #: ``'storage/file_id'``, as in an UploadedFile's ``files``.
    sa.Column("path", sa.String(PATH_LENGTH), nullable=False),
    #: The storage part of ``path``, so that a collector can work storage by storage.
    sa.Column("storage", sa.String(128), nullable=False),
    #: When the transaction that made the file unreferenced wrote this row (UTC).
    sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
    #: Failed removal attempts so far.
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    #: The error of the last failed attempt, for operators.
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Index("ix_sa_depot_pending_removals_path", "path"),
    sa.Index("ix_sa_depot_pending_removals_scheduled_at", "scheduled_at"),
)

__all__ = ["PATH_LENGTH", "metadata", "pending_removals"]
