"""Data migrations for the columns holding files: usable inside an Alembic ``upgrade()`` (pass
``op.get_bind()``) and from Python (pass an Engine).

* :func:`adopt_column` (and :func:`adopt_files`, for every file column of a metadata) registers
  in the file registry the files that rows written before it (or by filedepot, or raw SQL)
  use, so that the lifecycle can remove them as soon as their last row lets go of them.
* :func:`convert_column` turns the values of a column that holds plain storage paths
  (``'storage/file_id'``) or filedepot descriptors into complete ``UploadedFileField``
  descriptors, reading what is missing (name, type, size, checksum) from the stored files.
* :func:`move_files` moves every file of a column from one storage to another.

Both work in batches of rows, in primary key order, and leave a row alone when it already has
the wanted form: an interrupted run is resumed by running it again, and a second run changes
nothing. A row that another program changes while a batch is prepared is left as that program
wrote it (each update checks that the row still holds the value the helper read).

**Transactions.** Given an Engine, or a Connection outside any transaction, each batch is
written in a transaction of its own and committed. Given a Connection inside a transaction
(Alembic's ``op.get_bind()``), everything happens in that transaction, which its owner commits
or rolls back.

**Moving files safely.** :func:`move_files` copies each file first (under the same id when the
target storage accepts it), reads the copy back and compares its SHA-256 with the checksum the
row records, then updates the rows of the batch and, in the same transaction, tells the file
registry which row now uses which file and lists the old files nobody uses any more in
sa_depot's removal journal (:mod:`sa_depot.database.journal`). Only after that transaction
commits are the old files removed and their journal rows deleted. So a crash leaves either
rows pointing at the old files (the copies, unreferenced, are reused by the next run or swept
by the collector) or rows pointing at the new files with the old ones journaled (the next run,
or the collector, removes them). A removal that fails stays journaled. Inside an outer
transaction nothing can be removed before its owner commits: the old files stay journaled,
and the collector removes them afterwards.

A stored file the file registry knows is removed only when the last row using it moves (rows
sharing it in later batches or other columns keep it). A file the registry does not know
(rows written before it, by filedepot or raw SQL) is removed with the first row moved, as no
index tells whether another row shares it: adopt the column first (:func:`adopt_files`, or
``sa-depot adopt``), or make sure such data is deduplicated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

import sqlalchemy as sa

from sa_depot.database import journal, registry
from sa_depot.database.provision import ensure_schema
from sa_depot.database.references import canonical_path
from sa_depot.database.schema import adoptions
from sa_depot.descriptor import is_path, join_path, owned_paths, split_path, storage_of
from sa_depot.exceptions import ConfigurationError, DepotError, FileNotFound
from sa_depot.fields.upload import UPLOADED_AT_FORMAT
from sa_depot.io.copy import CopyVerificationError, copy_file
from sa_depot.io.interfaces import FileStorage, StoredFile, utcnow
from sa_depot.manager import DepotManager, remove_paths
from sa_depot.orm.settings import settings

#: What the helpers accept as a database: an Engine, or a Connection (Alembic's
#: ``op.get_bind()``).
Bind = sa.Engine | sa.Connection

#: The keys of a complete descriptor, in the order sa_depot writes them.
DESCRIPTOR_KEYS = (
    "file_id",
    "path",
    "depot_name",
    "filename",
    "content_type",
    "content_length",
    "checksum",
    "uploaded_at",
    "_public_url",
    "files",
)


class MigrationError(DepotError, ValueError):
    """A row cannot be migrated: the message names the table, the row and the reason. The rows
    of the failing batch are unchanged; rows of earlier batches stay migrated."""


@dataclass(frozen=True)
class ConversionProgress:
    """What :func:`convert_column` has done so far (given to the progress callback after each
    batch, and returned at the end)."""

    #: Rows with a value in the column when the run started.
    total_rows: int
    #: Rows read so far.
    rows_scanned: int = 0
    #: Rows rewritten as complete descriptors.
    rows_converted: int = 0
    #: Rows that were complete already, or that another program changed meanwhile.
    rows_unchanged: int = 0
    batches: int = 0


@dataclass(frozen=True)
class MoveProgress:
    """What :func:`move_files` has done so far (given to the progress callback after each
    batch, and returned at the end)."""

    #: Rows with a value in the column when the run started.
    total_rows: int
    #: Rows read so far.
    rows_scanned: int = 0
    #: Rows now pointing at the target storage, in this run.
    rows_moved: int = 0
    #: Files written to the target storage (a copy left by an interrupted run is reused).
    files_copied: int = 0
    bytes_copied: int = 0
    #: Old files removed after their rows' update committed.
    files_removed: int = 0
    #: Files journaled for removal but not removed yet: inside an outer transaction, or
    #: because their removal failed (the collector retries them).
    removals_pending: int = 0
    batches: int = 0


# == the column ===============================================================================
@dataclass(frozen=True)
class _Target:
    """The column a helper works on, as the database describes it."""

    table: sa.Table
    column: sa.Column[Any]
    key: tuple[sa.Column[Any], ...]

    @property
    def name(self) -> str:
        return f"{self.table.fullname}.{self.column.name}"

    def where(self, key: tuple[Any, ...]) -> str:
        shown = ", ".join(f"{c.name}={v!r}" for c, v in zip(self.key, key, strict=True))
        return f"{self.name}, row {shown}"

    @property
    def raw(self) -> sa.ColumnElement[str]:
        # Compared as text whatever the column type: JSON columns of PostgreSQL have no
        # equality operator, and a text comparison is what the optimistic check needs.
        return sa.cast(self.column, sa.Text())

    def encode(self, value: Mapping[str, Any]) -> Any:
        """``value`` as the column takes it: an object for JSON columns, else JSON text."""
        if isinstance(self.column.type, sa.JSON):
            return dict(value)
        return json.dumps(dict(value))


def _reflect(connection: sa.Connection, table: str | sa.Table, column: str) -> _Target:
    name, schema = (table.name, table.schema) if isinstance(table, sa.Table) else (table, None)
    try:
        reflected = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
    except sa.exc.NoSuchTableError as exc:
        raise MigrationError(f"table {name!r} does not exist in the database") from exc
    if column not in reflected.c:
        raise MigrationError(
            f"table {reflected.fullname!r} has no column {column!r}; its columns: "
            f"{', '.join(reflected.c.keys())}"
        )
    key = tuple(reflected.primary_key.columns)
    if not key:
        raise MigrationError(
            f"table {reflected.fullname!r} has no primary key: the helpers read rows in primary "
            "key order, so that an interrupted run can resume; add one first"
        )
    return _Target(reflected, reflected.c[column], key)


@dataclass(frozen=True)
class _Row:
    key: tuple[Any, ...]
    #: The column's value as text, exactly as read (the optimistic check compares it).
    raw: str


class _Database:
    """Where batches are read and written: transactions of their own, or the caller's."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        #: Whether the helper commits its batches (otherwise the caller's transaction holds
        #: everything and nothing may be removed before its owner commits).
        self.commits = isinstance(bind, sa.Engine) or not bind.in_transaction()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        if isinstance(self.bind, sa.Engine):
            with self.bind.begin() as connection:
                yield connection
        elif self.commits:
            with self.bind.begin():
                yield self.bind
        else:
            yield self.bind

    def target(self, table: str | sa.Table, column: str) -> _Target:
        with self.transaction() as connection:
            return _reflect(connection, table, column)

    def count(self, target: _Target) -> int:
        stmt = sa.select(sa.func.count()).select_from(target.table)
        with self.transaction() as connection:
            return int(connection.execute(stmt.where(target.column.is_not(None))).scalar_one())

    def batches(self, target: _Target, batch_size: int) -> Iterator[list[_Row]]:
        """Every row with a value in the column, ``batch_size`` at a time, by primary key."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
        last: tuple[Any, ...] | None = None
        while True:
            with self.transaction() as connection:
                rows = self.page(connection, target, last, batch_size)
            if not rows:
                return
            yield rows
            last = rows[-1].key

    def page(
        self,
        connection: sa.Connection,
        target: _Target,
        after: tuple[Any, ...] | None,
        batch_size: int,
        *,
        lock: bool = False,
    ) -> list[_Row]:
        """The next ``batch_size`` rows with a value, by primary key, after the key ``after``
        (locked until the transaction ends with ``lock``)."""
        stmt = (
            sa.select(*target.key, target.raw)
            .where(target.column.is_not(None))
            .order_by(*target.key)
            .limit(batch_size)
        )
        if after is not None:
            if len(target.key) == 1:
                stmt = stmt.where(target.key[0] > after[0])
            else:
                stmt = stmt.where(sa.tuple_(*target.key) > sa.tuple_(*after))
        if lock:
            stmt = stmt.with_for_update()
        return [_Row(tuple(r[:-1]), r[-1]) for r in connection.execute(stmt)]

    def update(
        self, connection: sa.Connection, target: _Target, row: _Row, value: Mapping[str, Any]
    ) -> bool:
        """Write ``value`` if the row still holds what was read; return whether it did."""
        criteria = [c == v for c, v in zip(target.key, row.key, strict=True)]
        stmt = (
            target.table.update()
            .where(*criteria, target.raw == row.raw)
            .values({target.column.name: target.encode(value)})
        )
        return connection.execute(stmt).rowcount == 1

    def current(self, connection: sa.Connection, target: _Target, row: _Row) -> str | None:
        criteria = [c == v for c, v in zip(target.key, row.key, strict=True)]
        value = connection.execute(sa.select(target.raw).where(*criteria)).scalar()
        return None if value is None else str(value)


def _parse(target: _Target, row: _Row) -> dict[str, Any] | str | None:
    """A row's value: a descriptor (dict), a path (str), or ``None`` for an empty string."""
    text = row.raw.strip()
    if not text:
        return None
    if text[0] in '{"':
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise MigrationError(f"{target.where(row.key)} holds malformed JSON: {exc}") from exc
        if isinstance(value, (dict, str)):
            return value
        raise MigrationError(
            f"{target.where(row.key)} holds JSON {type(value).__name__}, neither a descriptor "
            "nor a path"
        )
    return text


def _paths_of(value: dict[str, Any] | str | None) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not value:
        return []
    files = value.get("files")
    if isinstance(files, list) and files:
        return [str(p) for p in files]
    return list(owned_paths(value))


# == adopt ====================================================================================
@dataclass(frozen=True)
class AdoptionIssue:
    """A value adoption could not register (the row is left as it is)."""

    #: ``'table.column'``.
    column: str
    #: The row's primary key, as ``{column name: value}``.
    row: dict[str, Any]
    #: What is wrong, e.g. ``"storage 'old' is not configured"``.
    reason: str

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.row.items())
        return f"{self.column}, row {shown}: {self.reason}"


@dataclass
class AdoptionProgress:
    """What :func:`adopt_column` (or :func:`adopt_files`) has done so far: given to the
    progress callback after each batch, and returned at the end."""

    #: ``'table.column'`` being adopted.
    column: str
    #: Rows with a value in the column when the run started.
    total_rows: int
    #: Rows read so far (in this run; an adoption resumed counts from where it resumed).
    rows_scanned: int = 0
    #: Rows whose files are now all in the registry.
    rows_adopted: int = 0
    #: Paths registered for a row (a file two rows share counts twice).
    files_attached: int = 0
    #: Values that could not be registered, each with table, primary key and reason.
    issues: list[AdoptionIssue] = field(default_factory=list)
    #: Whether the column was adopted already by an earlier run (nothing was read).
    already_done: bool = False
    batches: int = 0


def adopt_column(
    bind: Bind,
    table: str | sa.Table,
    column: str,
    *,
    batch_size: int = 500,
    restart: bool = False,
    check_files: bool = True,
    progress: Callable[[AdoptionProgress], None] | None = None,
) -> AdoptionProgress:
    """Register the files that the rows of ``table.column`` use in the file registry.

    For rows written before the registry existed (an upgraded sa_depot database, a filedepot
    database) or by raw SQL. Until its files are adopted, a row that lets go of a file leaves
    it to the collector, since nothing proves that no other row shares it; afterwards the
    lifecycle removes a file as soon as its last row lets go of it (see docs/orm.md).

    Rows are read in primary key order, ``batch_size`` at a time, each batch locked, adopted
    and committed in a transaction of its own (or, given a Connection inside a transaction,
    such as Alembic's ``op.get_bind()``, all in that transaction). How far it got is recorded
    in ``sa_depot_adoptions``: an interrupted run resumes after the last batch committed, and
    a finished column is skipped unless ``restart`` is true (run with ``restart=True`` after
    raw SQL wrote more rows). Registering is idempotent: a row adopted twice is recorded once.

    A value that cannot be registered (text that is not JSON, a path into a storage that is
    not configured, a path to a file that does not exist when ``check_files`` is true, a file
    whose removal is journaled) is reported as an :class:`AdoptionIssue`; the rest of the row
    and the other rows go on. Nothing is deleted or changed in the rows.

    :param table: the table's name (or a :class:`~sqlalchemy.Table`, for its name and schema).
    :param check_files: ask each storage whether each file exists (one request per file).
    :param progress: called with an :class:`AdoptionProgress` after each batch. An exception
        it raises stops the run after that batch; run again to resume.
    :raises MigrationError: the table or column does not exist, or has no primary key.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    database = _Database(bind)
    target = database.target(table, column)
    with database.transaction() as connection:
        ensure_schema(connection)
        done = connection.execute(
            sa.select(adoptions.c.last_row_key, adoptions.c.finished).where(
                adoptions.c.table_name == target.table.fullname,
                adoptions.c.column_name == target.column.name,
            )
        ).first()
    state = AdoptionProgress(column=target.name, total_rows=database.count(target))
    if done is not None and done.finished and not restart:
        state.already_done = True
        return state
    last: tuple[Any, ...] | None = None
    if done is not None and done.last_row_key and not restart:
        last = tuple(json.loads(done.last_row_key))
    while True:
        with database.transaction() as connection:
            rows = database.page(connection, target, last, batch_size, lock=True)
            for row in rows:
                _adopt_row(connection, target, row, check_files, state)
            if rows:
                last = rows[-1].key
            _record_adoption(connection, target, last, len(rows), finished=len(rows) < batch_size)
        state.rows_scanned += len(rows)
        state.batches += 1
        if progress is not None:
            progress(state)
        if len(rows) < batch_size:
            return state


def adopt_files(
    bind: Bind,
    metadata: Any,
    *,
    batch_size: int = 500,
    restart: bool = False,
    check_files: bool = True,
    progress: Callable[[AdoptionProgress], None] | None = None,
) -> list[AdoptionProgress]:
    """:func:`adopt_column` for every ``UploadedFileField`` column of ``metadata`` (a
    MetaData, declarative base, registry, Table, or a list of them), one after the other."""
    from sa_depot.database.collector import file_columns

    return [
        adopt_column(
            bind,
            column.table,
            column.name,
            batch_size=batch_size,
            restart=restart,
            check_files=check_files,
            progress=progress,
        )
        for column in file_columns(metadata)
        if isinstance(column.table, sa.Table)
    ]


def _adopt_row(
    connection: sa.Connection,
    target: _Target,
    row: _Row,
    check_files: bool,
    state: AdoptionProgress,
) -> None:
    def issue(reason: str) -> None:
        named = {c.name: v for c, v in zip(target.key, row.key, strict=True)}
        state.issues.append(AdoptionIssue(target.name, named, reason))

    try:
        value = _parse(target, row)
    except MigrationError as exc:
        issue(str(exc).removeprefix(target.where(row.key)).strip())
        return
    paths = [p for p in _paths_of(value) if p]
    good: list[str] = []
    for path in paths:
        if not is_path(path):
            issue(f"{path!r} is not a 'storage/file_id' path")
            continue
        storage_name, file_id = split_path(path)
        try:
            storage = DepotManager.get(storage_name)
        except DepotError:
            issue(f"{path}: storage {storage_name!r} is not configured")
            continue
        if check_files:
            try:
                exists = storage.exists(file_id)
            except DepotError as exc:
                issue(f"{path}: {exc}")
                continue
            if not exists:
                issue(f"{path}: the file does not exist in storage {storage_name!r}")
                continue
        good.append(path)
    doomed = set(registry.journaled(connection, registry.canonical(good)))
    for path in good:
        if canonical_path(path) in doomed:
            issue(f"{path}: its removal is journaled (a transaction let go of it)")
    good = [p for p in good if canonical_path(p) not in doomed]
    if good:
        ref = registry.RowRef(target.table.fullname, target.column.name, registry.row_key(row.key))
        registry.attach(connection, ref, good, verify_files=False)  # checked above, if asked
        state.files_attached += len(good)
    if len(good) == len(paths):
        state.rows_adopted += 1


def _record_adoption(
    connection: sa.Connection,
    target: _Target,
    last: tuple[Any, ...] | None,
    rows: int,
    *,
    finished: bool,
) -> None:
    where = (
        adoptions.c.table_name == target.table.fullname,
        adoptions.c.column_name == target.column.name,
    )
    values = {
        "last_row_key": None if last is None else registry.row_key(last),
        "finished": finished,
        "updated_at": utcnow(),
    }
    updated = connection.execute(
        adoptions.update().where(*where).values(rows=adoptions.c.rows + rows, **values)
    )
    if updated.rowcount == 0:
        connection.execute(
            adoptions.insert().values(
                table_name=target.table.fullname,
                column_name=target.column.name,
                rows=rows,
                **values,
            )
        )


# == convert_column ===========================================================================
def convert_column(
    bind: Bind,
    table: str | sa.Table,
    column: str,
    *,
    storage: str | None = None,
    batch_size: int = 500,
    progress: Callable[[ConversionProgress], None] | None = None,
) -> ConversionProgress:
    """Rewrite every value of ``table.column`` as a complete UploadedFileField descriptor.

    A value may be a plain path (``'storage/file_id'``, or a bare file id in ``storage``), a
    descriptor written by filedepot (JSON), or an incomplete one. What it lacks (filename,
    content type, size, SHA-256, upload time, ``files``) is read from the stored file, which
    must exist; a checksum the row records must match it. A filedepot descriptor's derivatives
    (keys ending in ``_path``, such as thumbnails) join its ``files``, so that they are removed
    with the original. Complete descriptors are left alone.

    The column must be wide enough for the descriptor: on PostgreSQL and MariaDB, turn a short
    ``VARCHAR`` into ``TEXT`` first, convert, then alter it to ``UploadedFileField()`` (see
    docs/alembic.md).

    :param table: the table's name (or a :class:`~sqlalchemy.Table`, for its name and schema).
    :param storage: the storage of values that are bare file ids.
    :param progress: called with a :class:`ConversionProgress` after each batch. An exception
        it raises stops the run after that batch; run again to resume.
    """
    database = _Database(bind)
    target = database.target(table, column)
    state = ConversionProgress(total_rows=database.count(target))
    for rows in database.batches(target, batch_size):
        updates: list[tuple[_Row, dict[str, Any]]] = []
        for row in rows:
            value = _parse(target, row)
            if value is None or _is_complete(value):
                continue
            updates.append((row, _complete(target, row, value, storage)))
        converted = 0
        with database.transaction() as connection:
            for row, new_value in updates:
                _check_width(target, row, new_value)
                converted += database.update(connection, target, row, new_value)
        state = dataclasses.replace(
            state,
            rows_scanned=state.rows_scanned + len(rows),
            rows_converted=state.rows_converted + converted,
            rows_unchanged=state.rows_unchanged + len(rows) - converted,
            batches=state.batches + 1,
        )
        if progress is not None:
            progress(state)
    return state


def _is_complete(value: dict[str, Any] | str) -> bool:
    return (
        isinstance(value, dict)
        and all(k in value for k in DESCRIPTOR_KEYS)
        and value["checksum"] is not None
        and value["content_length"] is not None
        and bool(value["files"])
    )


def _complete(
    target: _Target, row: _Row, value: dict[str, Any] | str, default_storage: str | None
) -> dict[str, Any]:
    where = target.where(row.key)
    old = {} if isinstance(value, str) else dict(value)
    if isinstance(value, str):
        path = value
    elif isinstance(value.get("path"), str) and "/" in value["path"]:
        path = value["path"]
    elif value.get("file_id"):
        path = str(value["file_id"])
        if value.get("depot_name"):
            path = join_path(str(value["depot_name"]), path)
    else:
        raise MigrationError(f"{where} holds a descriptor without 'path' nor 'file_id'")
    if not is_path(path):
        if default_storage is None:
            raise MigrationError(
                f"{where} holds the bare file id {path!r}: pass storage='<name>' to say "
                "which storage holds such files"
            )
        path = join_path(default_storage, path)
    storage_name, file_id = split_path(path)
    try:
        storage = DepotManager.get(storage_name)
        with storage.get(file_id) as stored:
            length, checksum = _measure(stored)
            info = stored.info
    except DepotError as exc:
        raise MigrationError(f"{where}: {exc}") from exc
    recorded = old.get("checksum")
    if recorded is not None and recorded != checksum:
        raise MigrationError(
            f"{where}: the stored file {path} does not match the checksum the row records "
            f"({recorded}); its content is {checksum}"
        )
    files = old.get("files") or [path, *_derivatives(old, path)]
    descriptor: dict[str, Any] = {
        "file_id": file_id,
        "path": path,
        "depot_name": storage_name,
        "filename": old.get("filename", info.filename),
        "content_type": old.get("content_type") or info.content_type,
        "content_length": length,
        "checksum": checksum,
        "uploaded_at": old.get("uploaded_at")
        or info.last_modified.astimezone(timezone.utc).strftime(UPLOADED_AT_FORMAT),
        # a URL is computed afresh when read (UploadedFile.url): storing one could expire
        "_public_url": old.get("_public_url"),
        "files": list(files),
    }
    descriptor.update({k: v for k, v in old.items() if k not in descriptor})
    return descriptor


def _derivatives(descriptor: Mapping[str, Any], original: str) -> list[str]:
    """Stored files a filedepot descriptor records under ``*_path`` keys (thumbnails)."""
    found: list[str] = []
    for key, value in descriptor.items():
        if not key.endswith("_path") or not isinstance(value, str) or value == original:
            continue
        if not is_path(value) or value in found:
            continue
        storage_name, file_id = split_path(value)
        try:
            if DepotManager.get(storage_name).exists(file_id):
                found.append(value)
        except DepotError:  # not a storage path after all: a key of the application's
            continue
    return found


def _check_width(target: _Target, row: _Row, value: Mapping[str, Any]) -> None:
    length = getattr(target.column.type, "length", None)
    needed = len(json.dumps(dict(value)))
    if isinstance(length, int) and needed > length:
        raise MigrationError(
            f"{target.where(row.key)}: the descriptor needs {needed} characters but the column "
            f"is {target.column.type} (at most {length}); widen it first (TEXT, or "
            "UploadedFileField() where the data allows), then convert"
        )


def _measure(stored: StoredFile, chunk_size: int = 1024 * 1024) -> tuple[int, str]:
    """``(length, hex SHA-256)`` of a stored file's content, read in chunks."""
    digest = hashlib.sha256()
    length = 0
    while chunk := stored.read(chunk_size):
        digest.update(chunk)
        length += len(chunk)
    return length, digest.hexdigest()


# == move_files ===============================================================================
@dataclass
class _Copy:
    old_path: str
    new_path: str
    new_id: str
    written: bool
    size: int


def move_files(
    bind: Bind,
    table: str | sa.Table,
    column: str,
    *,
    source: str,
    target: str,
    batch_size: int = 100,
    progress: Callable[[MoveProgress], None] | None = None,
) -> MoveProgress:
    """Move every file of ``table.column`` stored in ``source`` to the storage ``target``,
    derivatives included, and point the rows at the copies (see the module docs for the
    order of the steps and what a crash leaves).

    Rows whose files are elsewhere already are left alone, so that running it again resumes
    an interrupted move and a finished move does nothing. The column must hold descriptors
    (:func:`convert_column` turns plain paths into descriptors).

    :param source: the storage to empty (an alias counts as the storage it stands for).
    :param target: the storage to fill; rows record it under this name.
    :param progress: called with a :class:`MoveProgress` after each batch (once its old files
        are removed). An exception it raises stops the run there; run again to resume.
    """
    source_name = DepotManager.resolve_alias(source)
    DepotManager.get(source)
    destination = DepotManager.get(target)
    if source_name == DepotManager.resolve_alias(target):
        raise ConfigurationError(f"source {source!r} and target {target!r} are the same storage")
    use_journal = settings.journal
    database = _Database(bind)
    where = database.target(table, column)
    with database.transaction() as connection:
        ensure_schema(connection)
    state = MoveProgress(total_rows=database.count(where))
    for rows in database.batches(where, batch_size):
        plan = _plan_moves(database, where, rows, source_name, target, destination)
        with database.transaction() as connection:
            moved, to_remove = _apply_moves(database, connection, where, plan)
            if use_journal and to_remove:
                journal.record_removals(connection, to_remove)
        removed, pending = 0, len(to_remove)
        if database.commits and to_remove:
            removed, pending = _remove_journaled(database, to_remove, use_journal)
        written = [c for c in plan.copies.values() if c.written]
        state = dataclasses.replace(
            state,
            rows_scanned=state.rows_scanned + len(rows),
            rows_moved=state.rows_moved + moved,
            files_copied=state.files_copied + len(written),
            bytes_copied=state.bytes_copied + sum(c.size for c in written),
            files_removed=state.files_removed + removed,
            removals_pending=state.removals_pending + pending,
            batches=state.batches + 1,
        )
        if progress is not None:
            progress(state)
    return state


@dataclass
class _MovePlan:
    """One batch, its files copied: what to write."""

    #: ``(row, its new value, the copies it points at)``.
    moves: list[tuple[_Row, dict[str, Any], list[_Copy]]] = field(default_factory=list)
    #: Rows another program changed while their files were being copied, with the copies
    #: made for them so far.
    abandoned: list[tuple[_Row, list[_Copy]]] = field(default_factory=list)
    #: Every copy of the batch, by old path (two rows of a batch may share a file).
    copies: dict[str, _Copy] = field(default_factory=dict)


class _SourceMissing(MigrationError):
    """A file to copy is not in its storage (any more)."""


def _plan_moves(
    database: _Database,
    where: _Target,
    rows: list[_Row],
    source_name: str,
    target: str,
    destination: FileStorage,
) -> _MovePlan:
    """Copy the files of ``rows`` that are in the source storage; plan the rows' updates."""
    plan = _MovePlan()
    for row in rows:
        value = _parse(where, row)
        if isinstance(value, str):
            raise MigrationError(
                f"{where.where(row.key)} holds the plain path {value!r}, not a descriptor: "
                "convert the column first (sa_depot.migrate.convert_column)"
            )
        moving = [p for p in _paths_of(value) if _storage_of(p) == source_name]
        if value is None or not moving:
            continue
        copies: list[_Copy] = []
        try:
            for path in moving:
                if path not in plan.copies:
                    expected = value.get("checksum") if path == value.get("path") else None
                    plan.copies[path] = _copy_verified(
                        where.where(row.key), path, expected, target, destination
                    )
                copies.append(plan.copies[path])
        except _SourceMissing:
            # The application replaced or deleted the row meanwhile (and removed its old
            # files), or the file is lost: only the latter is an error.
            with database.transaction() as connection:
                if database.current(connection, where, row) == row.raw:
                    raise
            plan.abandoned.append((row, copies))
            continue
        plan.moves.append((row, _moved_descriptor(value, copies, target), copies))
    return plan


def _apply_moves(
    database: _Database, connection: sa.Connection, where: _Target, plan: _MovePlan
) -> tuple[int, list[str]]:
    """Update the planned rows that still hold what was read; return how many were updated
    and the files nobody references any more (the old files of the rows updated, and the
    copies made for rows that changed meanwhile)."""
    moved = 0
    referenced: set[str] = set()
    old_files: list[str] = []
    orphaned: list[_Copy] = []
    for row, new_value, copies in plan.moves:
        if database.update(connection, where, row, new_value):
            moved += 1
            referenced.update(c.new_path for c in copies)
            ref = registry.RowRef(
                where.table.fullname, where.column.name, registry.row_key(row.key)
            )
            released = registry.detach(connection, ref, [c.old_path for c in copies])
            registry.register_new(connection, ref, [c.new_path for c in copies])
            old_files.extend(released.released + released.unregistered)
        else:
            orphaned.extend(copies)
            referenced.update(_paths_of(_current_value(database, connection, where, row)))
    for row, copies in plan.abandoned:
        orphaned.extend(copies)
        referenced.update(_paths_of(_current_value(database, connection, where, row)))
    unreferenced = [c.new_path for c in orphaned if c.new_path not in referenced]
    return moved, list(dict.fromkeys(old_files + unreferenced))


def _current_value(
    database: _Database, connection: sa.Connection, where: _Target, row: _Row
) -> dict[str, Any] | str | None:
    current = database.current(connection, where, row)
    return None if current is None else _parse(where, _Row(row.key, current))


def _storage_of(path: str) -> str:
    return DepotManager.resolve_alias(storage_of(path))


def _copy_verified(
    where: str, path: str, expected: str | None, target: str, destination: FileStorage
) -> _Copy:
    """Copy the file at ``path`` to ``destination`` (same id if it accepts it) with
    :func:`~sa_depot.io.copy.copy_file`, checking the copy against ``expected`` (the row's
    checksum), else the source file's. A right copy left by an interrupted run is reused."""
    storage_name, file_id = split_path(path)
    new_id = None if destination.is_valid_id(file_id) else destination.new_file_id()
    try:
        copied = copy_file(
            DepotManager.get(storage_name),
            destination,
            file_id,
            new_id=new_id,
            expected_checksum=expected,
            keep_last_modified=False,  # the grace period protects the copy until rows use it
        )
    except FileNotFound as exc:
        raise _SourceMissing(f"{where}: cannot copy {path} to {target!r}: {exc}") from exc
    except CopyVerificationError as exc:
        wanted = "the row expects" if expected else "expected"
        raise MigrationError(
            f"{where}: the copy of {path} in {target!r} has SHA-256 {exc.actual}, {wanted} "
            f"{exc.expected}; the copy was removed and the row left as it was"
        ) from exc
    except DepotError as exc:
        raise MigrationError(f"{where}: cannot copy {path} to {target!r}: {exc}") from exc
    info = copied.info
    return _Copy(
        path, f"{target}/{info.file_id}", info.file_id, copied.copied, info.content_length or 0
    )


def _moved_descriptor(
    value: Mapping[str, Any], copies: Sequence[_Copy], target: str
) -> dict[str, Any]:
    """``value`` with every moved path (and, when ids changed, file id) replaced."""
    new_paths = {c.old_path: c.new_path for c in copies}
    new_ids = {split_path(c.old_path)[1]: c.new_id for c in copies}
    new_ids = {old: new for old, new in new_ids.items() if old != new}

    def rewrite(item: Any) -> Any:
        if isinstance(item, str):
            return new_paths.get(item, new_ids.get(item, item))
        if isinstance(item, list):
            return [rewrite(i) for i in item]
        return item

    moved = {key: rewrite(item) for key, item in value.items()}
    # URLs of moved files are computed afresh when read (UploadedFile.url and the derivatives'
    # ``<name>_url`` attributes): a saved one would point at the old storage, or expire.
    for key, item in value.items():  # filedepot's derivative keys: <name>_path, <name>_url
        url_key = key[: -len("_path")] + "_url"
        if key.endswith("_path") and item in new_paths and url_key in value:
            moved[url_key] = None
    if value.get("path") in new_paths:
        moved["depot_name"] = target
        moved["_public_url"] = None
    return moved


def _remove_journaled(database: _Database, paths: list[str], use_journal: bool) -> tuple[int, int]:
    """Remove files whose rows no longer reference them (the transaction committed); return
    ``(removed, still pending)``."""
    failures = remove_paths(paths)
    failed = {path for path, _ in failures}
    removed = [p for p in paths if p not in failed]
    if use_journal:
        with database.transaction() as connection:
            journal.complete_removals(connection, removed)
            journal.record_failures(connection, failures)
    return len(removed), len(failed)


__all__ = [
    "DESCRIPTOR_KEYS",
    "AdoptionIssue",
    "AdoptionProgress",
    "adopt_column",
    "adopt_files",
    "ConversionProgress",
    "MigrationError",
    "MoveProgress",
    "convert_column",
    "move_files",
]
