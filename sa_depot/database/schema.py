"""The tables sa_depot keeps in your database, in a :class:`~sqlalchemy.MetaData` of their own.

Create them with sa_depot's Alembic migration or, without Alembic::

    from sa_depot.schema import metadata
    metadata.create_all(engine)

(If they are missing when the session lifecycle first needs them, it creates them: see
:func:`sa_depot.database.tables.ensure_tables`.)

**The file registry** answers "does a committed row still use this stored file?" with an
index lookup, whatever the size of your tables (the model is Rails Active Storage's blobs and
attachments):

* ``sa_depot_files``: one row per stored file that some row uses, keyed by its path, with
  the number of uses;
* ``sa_depot_attachments``: one row per (table, column, row, path): which row uses which file.

They are written by the session lifecycle in the transaction that changes the row, so a
rollback (or a savepoint rollback) takes them back with it.

**The removal journal**, ``sa_depot_pending_removals``: when a transaction removes the last
attachment of a file, the file's path is inserted here in that same transaction. After the
commit the file is removed and its row deleted; if the removal fails, or the process dies
before it, the row stays (with ``attempts`` and ``last_error``) for the collector.

**The promotion journal**, ``sa_depot_promotions``: one row per queued file (a column with
``promote_to``) waiting to be processed and moved to its public storage, written in the
transaction that stores the row holding it; the promotion deletes it in the short transaction
that writes the promoted descriptor (see :mod:`sa_depot.database.promotions`).

**Adoption progress**, ``sa_depot_adoptions``: how far :func:`sa_depot.migrate.adopt_files`
got through each column, so that an interrupted adoption resumes.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The MetaData holding every table of sa_depot's own schema.
metadata = sa.MetaData()

#: Longest ``'storage/file_id'`` path stored (storage names are short, ids are UUIDs for
#: sa_depot's storages; readable keys and other backends' ids still fit).
PATH_LENGTH = 512
#: Longest table or column name recorded (PostgreSQL's limit is 63, MariaDB's 64).
NAME_LENGTH = 128
#: Longest primary key recorded, as :func:`sa_depot.database.registry.row_key` writes it.
ROW_KEY_LENGTH = 255

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

files = sa.Table(
    "sa_depot_files",
    metadata,
    #: ``'storage/file_id'``, with the storage name as first configured for its location.
    sa.Column("path", sa.String(PATH_LENGTH), primary_key=True),
    sa.Column("storage", sa.String(NAME_LENGTH), nullable=False),
    #: How many uses the attachments record (the sum of their ``uses``): the file's lock and
    #: its count live in this one row, so that deciding whether anybody still uses the file
    #: reads one row by its key.
    sa.Column("refs", sa.Integer(), nullable=False, default=0),
    #: When the file joined the registry (UTC).
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
)

attachments = sa.Table(
    "sa_depot_attachments",
    metadata,
    #: SHA-256 (hex) of path, table, column and row key: one row per row using a file, found
    #: by its key (databases lock a row found by its key without locking its neighbours).
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("path", sa.String(PATH_LENGTH), nullable=False),
    #: The table and column holding the descriptor that uses the file.
    sa.Column("table_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("column_name", sa.String(NAME_LENGTH), nullable=False),
    #: The row's primary key (JSON list), or ``''`` when the writer could not know it (a
    #: Core ``INSERT`` of many rows whose keys the database generated).
    sa.Column("row_key", sa.String(ROW_KEY_LENGTH), nullable=False),
    #: How many rows this attachment stands for: 1, or more for rows of unknown key.
    sa.Column("uses", sa.Integer(), nullable=False, default=1),
    sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_sa_depot_attachments_path", "path"),
)

pending_removals = sa.Table(
    "sa_depot_pending_removals",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    #: ``'storage/file_id'``, as in an UploadedFile's ``files``.
    sa.Column("path", sa.String(PATH_LENGTH), nullable=False),
    #: The storage part of ``path``, so that a collector can work storage by storage.
    sa.Column("storage", sa.String(NAME_LENGTH), nullable=False),
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

promotions = sa.Table(
    "sa_depot_promotions",
    metadata,
    #: ``'storage/file_id'`` of the queued file (the descriptor's ``path``).
    sa.Column("path", sa.String(PATH_LENGTH), primary_key=True),
    #: The storage the promoted file goes to.
    sa.Column("target", sa.String(NAME_LENGTH), nullable=False),
    #: The row holding the queued file, as the file registry names it.
    sa.Column("table_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("column_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("row_key", sa.String(ROW_KEY_LENGTH), nullable=False),
    #: ``'queued'`` (waiting, or retrying) or ``'failed'`` (gave up after its attempts).
    sa.Column("state", sa.String(16), nullable=False, default="queued"),
    sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
    #: Failed attempts so far, when the last one ran, and its error.
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    #: Not retried before this time (UTC): the back-off after a failure.
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_sa_depot_promotions_state", "state", "next_attempt_at"),
)

adoptions = sa.Table(
    "sa_depot_adoptions",
    metadata,
    sa.Column("table_name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("column_name", sa.String(NAME_LENGTH), primary_key=True),
    #: The primary key of the last row adopted (JSON list), ``None`` before the first batch.
    sa.Column("last_row_key", sa.Text(), nullable=True),
    #: Rows read so far, and whether the whole column was read.
    sa.Column("rows", sa.BigInteger(), nullable=False, default=0),
    sa.Column("finished", sa.Boolean(), nullable=False, default=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

__all__ = [
    "NAME_LENGTH",
    "PATH_LENGTH",
    "ROW_KEY_LENGTH",
    "adoptions",
    "attachments",
    "files",
    "metadata",
    "pending_removals",
    "promotions",
]
