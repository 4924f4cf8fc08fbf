"""The collector: removes the stored files that no committed row references.

The session lifecycle removes the files a transaction let go of right after its commit. Two
kinds of files escape it, and :func:`collect` finds both:

1. **Journaled removals a crash interrupted.** When a transaction lets go of the last row using
   a file, the file's path goes to ``sa_depot_pending_removals`` in that same transaction
   (:mod:`sa_depot.database.journal`). A process killed between the commit and the removal, or
   a removal that failed, leaves the row behind. The collector finishes those removals with
   the lifecycle's own :func:`~sa_depot.database.journal.finish_pending_removals`, keeping any
   file that a committed row references (raw SQL may have copied a descriptor).
2. **Orphans** (*mark and sweep*). Files uploaded by a process killed before its commit, files
   of rows deleted by raw SQL or another program, files the registry does not know (rows
   written before it) that their rows let go of, leftovers of interrupted writes. The *mark*
   reads every row of every ``UploadedFileField`` column of the metadata you pass, in batches
   ordered by primary key, in one transaction (so that all tables are read from one snapshot
   where the database offers one), and writes every path the descriptors own (``files``,
   derivatives included, and filedepot's ``path``/``*_path`` keys) into a temporary table of
   the database. The *sweep* lists each storage page by page and asks that table which ids of
   the page are referenced: the files that are not **and** were last modified more than
   ``grace`` before the collection started are removed (with any stale registry rows).
   Storages with a ``remove_incomplete(older_than)`` method (local disk, S3, GridFS) are then
   asked to remove what interrupted writes left.

Memory stays bounded whatever the number of rows and files: the referenced paths live in the
database, not in a Python set; the collector holds one batch of rows or one page of ids at a
time (plus the paths it reports). An interrupted collection leaves nothing half-done: running
it again starts over and does what is left.

**The race with transactions in flight.** A transaction that has uploaded a file but not yet
committed holds a file that no committed row references: to the mark it looks exactly like an
orphan. Only its age protects it, so **the grace period must exceed the longest time between
an upload and the commit of its transaction** (24 hours by default). The cutoff is taken
before the mark starts: a row committed after the mark's snapshot can only reference a file
uploaded by its own transaction, hence less than ``grace`` before that commit, hence after the
cutoff.

**Which storages it sweeps.** By default only the storages that the file columns of the
metadata write to (each column's ``upload_storage``, or the default storage for a column that
names none; aliases followed). A storage that no column writes to (a backup filled by
``sa-depot copy``, another application's storage) holds files no row of this database will ever
reference: sweeping it would empty it, so it is swept only when ``storages`` names it.

3. **Stalled promotions.** Files queued for promotion (a column with ``promote_to``) whose
   journal row in ``sa_depot_promotions`` is older than ``grace``: the process that was to
   promote them died. With a ``promoter`` (``sa-depot gc`` passes one when the models are
   imported), the collector runs them again. A queued file is a file its row references: the
   sweep keeps it, as any other.

What the collector cannot see: references held in columns missing from the metadata you pass,
in other databases, or outside any database (a storage shared between applications). Pass
every metadata whose rows reference the storages, and name in ``storages`` only the ones they
own. See docs/collector.md.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, registry

from sa_depot.database import journal, promotions
from sa_depot.database import registry as file_registry
from sa_depot.database.references import reference_key, storage_location
from sa_depot.database.schema import PATH_LENGTH, files, pending_removals
from sa_depot.descriptor import join_path, paths_in
from sa_depot.exceptions import ConfigurationError, DepotError, FileNotFound
from sa_depot.io.interfaces import FileStorage, utcnow
from sa_depot.manager import DepotManager

_log = logging.getLogger(__name__)

#: The default grace period: files younger than this are never swept.
DEFAULT_GRACE = timedelta(hours=24)

#: Rows fetched per round trip during the mark, ids per page of the sweep.
BATCH_SIZE = 1000

#: What :func:`collect` accepts as the description of the tables holding files.
MetadataLike = sa.MetaData | sa.Table | type[DeclarativeBase] | registry
Bind = sa.Engine | sa.Connection


class CollectorError(DepotError, ValueError):
    """The collector was asked to do something it cannot do safely."""


@runtime_checkable
class _RemovesIncomplete(Protocol):
    def remove_incomplete(self, older_than: timedelta = ...) -> list[str]: ...


@dataclass
class CollectReport:
    """What :func:`collect` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    grace: timedelta
    #: Files last modified after this moment were too young to sweep.
    cutoff: datetime
    #: ``'table.column'`` of every column the mark read.
    columns: list[str] = field(default_factory=list)
    #: The storages swept (storage names, aliases resolved).
    storages: list[str] = field(default_factory=list)
    #: Configured storages left alone because no file column writes to them and ``storages``
    #: did not name them.
    not_swept: list[str] = field(default_factory=list)
    #: Rows read by the mark (with a value in one of ``columns``).
    rows_scanned: int = 0
    #: Distinct paths the rows reference.
    referenced: int = 0
    #: Files listed in the swept storages.
    stored: int = 0
    #: Journaled paths whose files were removed (or, dry run, would be) and rows deleted.
    journal_finished: list[str] = field(default_factory=list)
    #: Journaled paths a committed row references again: the file stays, the row goes.
    journal_kept: list[str] = field(default_factory=list)
    #: Unreferenced files older than the grace period: removed (or, dry run, would be).
    orphans: list[str] = field(default_factory=list)
    #: Unreferenced files younger than the grace period: left alone.
    too_young: list[str] = field(default_factory=list)
    #: What ``remove_incomplete`` removed (leftovers of interrupted writes; not in dry runs).
    incomplete: list[str] = field(default_factory=list)
    #: Referenced paths of swept storages that were not found when the storage was listed.
    #: Either a row points at a missing file, or a transaction removed it after the mark.
    missing: list[str] = field(default_factory=list)
    #: ``(path or storage, message)`` of every failure; the rest of the work went on.
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: Queued paths whose promotion stalled (journaled before the cutoff) and was run again
    #: (or, dry run, would be), with what the run did.
    promotions: list[tuple[str, str]] = field(default_factory=list)
    #: Whether the removal journal table exists (without it only the sweep runs).
    journal_available: bool = True

    @property
    def ok(self) -> bool:
        """No errors."""
        return not self.errors

    def summary(self) -> str:
        """One line per count, for logs and the command line."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"swept storages: {', '.join(self.storages) or 'none'}"
            + (f"; not swept: {', '.join(self.not_swept)}" if self.not_swept else ""),
            f"scanned {self.rows_scanned} rows in {len(self.columns)} columns: "
            f"{self.referenced} referenced files; {self.stored} stored files listed",
            f"journal: {verb} {len(self.journal_finished)}, kept {len(self.journal_kept)} "
            "still referenced" + ("" if self.journal_available else " (no journal table: skipped)"),
            f"orphans older than the grace period ({_format_delta(self.grace)}): {verb} "
            f"{len(self.orphans)}; too young: {len(self.too_young)}",
            "leftovers of interrupted writes: not looked for in a dry run"
            if self.dry_run
            else f"leftovers of interrupted writes removed: {len(self.incomplete)}",
            f"referenced but missing: {len(self.missing)}",
            f"stalled promotions run again: {len(self.promotions)}",
            f"errors: {len(self.errors)}",
        ]
        return "\n".join(lines)


def collect(
    bind: Bind,
    metadata: MetadataLike | Iterable[MetadataLike],
    storages: Iterable[str] | None = None,
    *,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    now: datetime | None = None,
    journal_pass: bool = True,
    sweep: bool = True,
    batch_size: int = BATCH_SIZE,
    promoter: Callable[[str], object] | None = None,
) -> CollectReport:
    """Finish interrupted removals and remove unreferenced files older than ``grace``.

    :param bind: an Engine (the collector opens its own connection and transactions), or a
        Connection (used as is; if it is inside a transaction, the journal updates join it
        and its owner commits them).
    :param metadata: the MetaData (or declarative base, registry, Table, or a list of them)
        describing **every** table whose ``UploadedFileField`` columns reference files in
        ``storages``. A file referenced only from a table left out is swept.
    :param storages: the storage names to sweep. By default, the storages the file columns of
        ``metadata`` write to (their ``upload_storage``, or the default storage); a storage no
        column writes to (a backup, another application's) is swept only when named here.
        Aliases are followed; an unknown name raises
        :class:`~sa_depot.exceptions.StorageNotFound`.
    :param grace: files last modified less than this before ``now`` are never swept. It must
        exceed the longest time between an upload and the commit of its transaction.
    :param dry_run: report what would be removed, remove nothing, write nothing.
    :param now: the reference time of the grace period (default: the current time).
    :param journal_pass: process the removal journal (a).
    :param sweep: mark and sweep (b). ``sweep=False`` needs no metadata (pass ``[]``).
    :param batch_size: rows per round trip while marking.
    :param promoter: runs the promotion of a queued path (for instance
        ``lambda path: sa_depot.promotion.promote(engine, path)``); with it, promotions
        journaled more than ``grace`` ago and still queued are run again first.
    :raises CollectorError: when sweeping would be unsafe (a table of the metadata is missing
        from the database, or the metadata has no ``UploadedFileField`` column).
    """
    if grace < timedelta(0):
        raise CollectorError(f"grace must not be negative, not {grace!r}")
    started = datetime.now(timezone.utc)
    now = _aware(now) if now is not None else started
    report = CollectReport(dry_run=dry_run, grace=grace, cutoff=now - grace)
    columns = _file_columns(_tables(metadata)) if sweep else []
    if sweep and not columns:
        raise CollectorError(
            "the metadata given to the collector has no UploadedFileField column, so every "
            "stored file would look unreferenced: pass the metadata of your models (e.g. "
            "Base.metadata), or sweep=False to process the removal journal only"
        )
    report.columns = [f"{c.table.fullname}.{c.name}" for c in columns]
    names = sweep_plan(columns, storages) if sweep else []
    report.storages = names
    report.not_swept = left_alone(names) if sweep else []

    if promoter is not None:
        _finish_promotions(bind, promoter, report, now=now, dry_run=dry_run)
    with _marks(bind, sweep) as marks:
        if sweep:
            _mark(marks, columns, batch_size, report)
        if journal_pass:
            _finish_journal(bind, marks if sweep else None, started, dry_run, batch_size, report)
        if sweep:
            swept: set[object] = set()
            for name in names:
                storage = DepotManager.get(name)
                if storage_location(storage) not in swept:  # two names on one place: once
                    swept.add(storage_location(storage))
                    _sweep(marks, storage, name, batch_size, report)
            report.missing.sort()
            if not dry_run:
                _remove_incomplete(names, report.cutoff, report)
    _log.info("sa_depot collector%s:\n%s", " (dry run)" if dry_run else "", report.summary())
    return report


def _finish_promotions(
    bind: Bind,
    promoter: Callable[[str], object],
    report: CollectReport,
    *,
    now: datetime,
    dry_run: bool,
) -> None:
    engine = bind.engine if isinstance(bind, sa.Connection) else bind
    for path in promotions.due(engine, now=now, older_than=report.grace):
        if dry_run:
            report.promotions.append((path, "would run"))
            continue
        try:
            outcome = promoter(path)
        except Exception as exc:  # noqa: BLE001 - the collection goes on; the report says it
            report.errors.append((path, f"promotion: {_describe(exc)}"))
            continue
        report.promotions.append((path, str(getattr(outcome, "value", outcome))))


# == what to read ==============================================================================
def _tables(metadata: MetadataLike | Iterable[MetadataLike]) -> list[sa.Table]:
    items: Iterable[Any] = (
        [metadata] if isinstance(metadata, (sa.MetaData, sa.Table, type, registry)) else metadata
    )
    tables: dict[str, sa.Table] = {}
    for item in items:
        if isinstance(item, sa.Table):
            tables.setdefault(item.fullname, item)
            continue
        found = getattr(item, "metadata", item)
        if not isinstance(found, sa.MetaData):
            raise CollectorError(
                f"the collector reads MetaData, declarative bases, registries or Tables, not "
                f"{type(item).__name__} ({item!r})"
            )
        for table in found.sorted_tables:
            tables.setdefault(table.fullname, table)
    return list(tables.values())


def _file_columns(tables: Iterable[sa.Table]) -> list[sa.Column[Any]]:
    """The columns whose type is sa_depot's UploadedFileField (or filedepot's, by name)."""
    return [
        column
        for table in tables
        for column in table.columns
        if getattr(column.type, "sa_depot_file_field", False)
        or any(cls.__name__ == "UploadedFileField" for cls in type(column.type).__mro__)
    ]


def written_storages(columns: Iterable[sa.Column[Any]]) -> list[str]:
    """The storage names (aliases resolved) that ``columns`` write new files to: each
    column type's ``upload_storage``, or the default storage for a column naming none, and
    its ``promote_to``."""
    names: list[str] = []
    for column in columns:
        name = getattr(column.type, "upload_storage", None) or DepotManager.get_default()
        promoted_to = getattr(column.type, "promote_to", None)  # promotions write there
        for written in (name, promoted_to) if promoted_to else (name,):
            DepotManager.get(written)  # raises StorageNotFound, naming the configured ones
            resolved = DepotManager.resolve_alias(written)
            if resolved not in names:
                names.append(resolved)
    return names


def sweep_plan(columns: Iterable[sa.Column[Any]], storages: Iterable[str] | None) -> list[str]:
    """The storages :func:`collect` sweeps: ``storages`` if given (aliases resolved), else
    the ones ``columns`` write to (:func:`written_storages`)."""
    if storages is None:
        return written_storages(columns)
    return _storage_names(storages)


def file_columns(metadata: MetadataLike | Iterable[MetadataLike]) -> list[sa.Column[Any]]:
    """The ``UploadedFileField`` columns of ``metadata`` (as :func:`collect` reads it)."""
    return _file_columns(_tables(metadata))


def left_alone(swept: list[str]) -> list[str]:
    """Configured storages that a sweep of ``swept`` does not touch (a name sharing the
    directory or bucket of a swept storage is swept with it)."""
    locations = {storage_location(DepotManager.get(name)) for name in swept}
    return [
        name
        for name in DepotManager.names()
        if name not in swept and storage_location(DepotManager.get(name)) not in locations
    ]


def _storage_names(storages: Iterable[str]) -> list[str]:
    if isinstance(storages, str):
        storages = [storages]
    names: list[str] = []
    for name in storages:
        DepotManager.get(name)  # raises StorageNotFound, naming the configured ones
        resolved = DepotManager.resolve_alias(name)
        if resolved not in names:
            names.append(resolved)
    return names


# == mark ======================================================================================
def _location_key(location: object) -> str:
    """A short text standing for a storage location in the marks table."""
    return hashlib.sha256(repr(location).encode()).hexdigest()[:32]


class _Marks:
    """The referenced files, in a temporary table of the database (not in Python memory)."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.table = sa.Table(
            f"sa_depot_marks_{uuid.uuid4().hex[:12]}",
            sa.MetaData(),
            sa.Column("location", sa.String(32), nullable=False),
            sa.Column("file_id", sa.String(PATH_LENGTH), nullable=False),
            sa.Column("listed", sa.Boolean(), nullable=False, default=False),
            sa.Index(None, "location", "file_id"),
            prefixes=["TEMPORARY"],
        )

    def create(self) -> None:
        self.table.create(self.connection)

    def drop(self) -> None:
        self.table.drop(self.connection)

    def add(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.connection.execute(self.table.insert(), rows)

    def analyze(self) -> None:
        """Give PostgreSQL's planner the statistics of the filled table.

        Its autovacuum never analyzes temporary tables: without statistics, the planner takes
        ``location = ?`` for selective and reads every mark of the location for each page of
        the sweep (measured: 3.7 s per page of 1,000 ids with 1,000,000 marks, an hour for
        the sweep), where the index on ``(location, file_id)`` finds the page's ids in
        milliseconds. SQLite and InnoDB use the index without statistics (and MySQL's
        ``ANALYZE TABLE`` would commit the snapshot's transaction).
        """
        if self.connection.dialect.name == "postgresql":
            name = self.connection.dialect.identifier_preparer.quote(self.table.name)
            self.connection.exec_driver_sql(f"ANALYZE {name}")

    def referenced(self, location: object, file_ids: Sequence[str]) -> set[str]:
        """Those of ``file_ids`` (of one storage location) that some row references."""
        if not file_ids:
            return set()
        table = self.table
        return set(
            self.connection.execute(
                sa.select(table.c.file_id)
                .where(table.c.location == _location_key(location))
                .where(table.c.file_id.in_(list(file_ids)))
            ).scalars()
        )

    def referenced_paths(self, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` (into configured storages) that some row references."""
        by_location: dict[object, list[tuple[str, str]]] = {}
        for path in paths:
            key = reference_key(path)
            if key is not None:
                by_location.setdefault(key[0], []).append((path, key[1]))
        found: set[str] = set()
        for location, pairs in by_location.items():
            hits = self.referenced(location, [file_id for _, file_id in pairs])
            found.update(path for path, file_id in pairs if file_id in hits)
        return found

    def mark_listed(self, location: object, file_ids: Sequence[str]) -> None:
        table = self.table
        if file_ids:
            self.connection.execute(
                table.update()
                .where(table.c.location == _location_key(location))
                .where(table.c.file_id.in_(list(file_ids)))
                .values(listed=True)
            )

    def unlisted(self, location: object) -> Iterator[str]:
        """The referenced ids of ``location`` that :meth:`mark_listed` never saw."""
        table = self.table
        yield from self.connection.execute(
            sa.select(table.c.file_id)
            .where(table.c.location == _location_key(location), table.c.listed.is_(False))
            .distinct()
        ).scalars()

    def count(self) -> int:
        table = self.table
        distinct = sa.select(table.c.location, table.c.file_id).distinct().subquery()
        return int(
            self.connection.execute(sa.select(sa.func.count()).select_from(distinct)).scalar() or 0
        )


@contextmanager
def _marks(bind: Bind, wanted: bool) -> Iterator[_Marks]:
    """A temporary marks table on one connection, dropped at the end."""
    with _own_connection(bind) as connection:
        marks = _Marks(connection)
        if not wanted:
            yield marks
            return
        _committed(connection, marks.create)
        try:
            yield marks
        finally:
            _committed(connection, marks.drop)


@contextmanager
def _own_connection(bind: Bind) -> Iterator[sa.Connection]:
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as connection:
            yield connection


def _committed(connection: sa.Connection, action: Any) -> None:
    """Run ``action`` and commit it, unless ``connection`` is in its owner's transaction."""
    if connection.in_transaction():
        action()
    else:
        with connection.begin():
            action()


def _mark(
    marks: _Marks, columns: list[sa.Column[Any]], batch_size: int, report: CollectReport
) -> None:
    connection = marks.connection
    with _snapshot(connection):
        inspector = sa.inspect(connection)
        for table in {c.table for c in columns}:
            if not inspector.has_table(table.name, schema=table.schema):
                raise CollectorError(
                    f"table {table.fullname!r} of the metadata does not exist in the database "
                    f"{connection.engine.url.render_as_string(hide_password=True)}: the "
                    "collector cannot tell which files its rows reference, so it refuses to "
                    "sweep. Point it at the application's database, or create the table"
                )
        for column in columns:
            batch: list[dict[str, Any]] = []
            for value in _column_values(connection, column, batch_size):
                report.rows_scanned += 1
                for path in dict.fromkeys(paths_in(value)):  # a descriptor names it twice
                    key = reference_key(path)
                    if key is not None:
                        batch.append({"location": _location_key(key[0]), "file_id": key[1]})
                if len(batch) >= batch_size:
                    marks.add(batch)
                    batch = []
            marks.add(batch)
        marks.analyze()
        report.referenced = marks.count()


def _column_values(
    connection: sa.Connection, column: sa.Column[Any], batch_size: int
) -> Iterator[Any]:
    """The non-null values of ``column`` as text, read in batches: by primary key (keyset
    pagination, so that no cursor stays open while the marks are written), or, for a table
    without one, by offset."""
    table = column.table
    raw = sa.type_coerce(column, sa.Text())
    primary_key = list(table.primary_key.columns)
    if not primary_key:
        for offset in itertools.count(0, batch_size):
            rows = (
                connection.execute(
                    sa.select(raw)
                    .where(column.is_not(None))
                    .order_by(raw)
                    .limit(batch_size)
                    .offset(offset)
                )
                .scalars()
                .all()
            )
            yield from rows
            if len(rows) < batch_size:
                return
    last: tuple[Any, ...] | None = None
    while True:
        stmt = sa.select(*primary_key, raw).where(column.is_not(None)).order_by(*primary_key)
        if last is not None:
            position = (
                primary_key[0] > last[0]
                if len(primary_key) == 1
                else sa.tuple_(*primary_key) > sa.tuple_(*last)
            )
            stmt = stmt.where(position)
        page = connection.execute(stmt.limit(batch_size)).all()
        for row in page:
            yield row[-1]
        if len(page) < batch_size:
            return
        last = tuple(page[-1][: len(primary_key)])


@contextmanager
def _snapshot(connection: sa.Connection) -> Iterator[None]:
    """Reads that all see one snapshot, where the database offers one (the caller's own
    transaction, if ``connection`` is in one)."""
    if connection.in_transaction():
        yield
        return
    if connection.dialect.name in {"postgresql", "mysql", "mariadb"}:
        connection.execution_options(isolation_level="REPEATABLE READ")
    try:
        with connection.begin():
            yield
    finally:
        if connection.dialect.name in {"postgresql", "mysql", "mariadb"}:
            connection.execution_options(isolation_level=connection.default_isolation_level)


# == the journal ===============================================================================
def _finish_journal(
    bind: Bind,
    marks: _Marks | None,
    started: datetime,
    dry_run: bool,
    batch_size: int,
    report: CollectReport,
) -> None:
    with _own_connection(bind) as connection:
        if not sa.inspect(connection).has_table(pending_removals.name):
            report.journal_available = False
            return
    # Only rows scheduled before the mark started (to the second the journal records): a
    # later one may unreference a file the mark saw referenced; left for the next run, it is
    # finished then, rather than its file kept until a sweep.
    older_than = max(utcnow() - started.replace(microsecond=0), timedelta(0))
    after: tuple[datetime, str] | None = None
    while True:
        entries = journal.pending(bind, older_than=older_than, limit=batch_size, after=after)
        if not entries:
            return
        after = (entries[-1].scheduled_at, entries[-1].path)
        paths = [entry.path for entry in entries]
        referenced = marks.referenced_paths(paths) if marks is not None else set()
        if dry_run:
            report.journal_kept.extend(p for p in paths if p in referenced)
            report.journal_finished.extend(p for p in paths if p not in referenced)
        else:
            result = journal.finish_removals(bind, paths, referenced)
            report.journal_finished.extend(result.removed)
            report.journal_kept.extend(result.kept)
            report.errors.extend((path, _describe(exc)) for path, exc in result.failed)
        if len(entries) < batch_size:
            return


# == sweep =====================================================================================
def _sweep(
    marks: _Marks, storage: FileStorage, name: str, batch_size: int, report: CollectReport
) -> None:
    location = storage_location(storage)
    try:
        ids = storage.iter_ids()
        while True:
            page = list(itertools.islice(ids, batch_size))
            if not page:
                break
            report.stored += len(page)
            referenced = marks.referenced(location, page)
            marks.mark_listed(location, [i for i in page if i in referenced])
            removed = [
                file_id
                for file_id in page
                if file_id not in referenced and _sweep_one(storage, name, file_id, report)
            ]
            if removed and not report.dry_run:
                _forget_registered(marks.connection, [join_path(name, i) for i in removed])
    except DepotError as exc:
        report.errors.append((name, f"listing the storage failed: {_describe(exc)}"))
        return
    report.missing.extend(join_path(name, file_id) for file_id in marks.unlisted(location))


def _sweep_one(storage: FileStorage, name: str, file_id: str, report: CollectReport) -> bool:
    """Remove (or, dry run, report) one unreferenced file if it is old enough; whether it
    was (or would be) removed."""
    path = join_path(name, file_id)
    try:
        info = storage.info(file_id)
    except FileNotFound:
        return False  # removed since the listing
    except DepotError as exc:
        report.errors.append((path, f"reading its metadata failed: {_describe(exc)}"))
        return False
    if "/" in file_id and info.checksum is None:
        # A nested name (a readable key) that sa_depot did not write: it records a checksum
        # with every file, and filedepot wrote no nested names. Another program's object
        # under the storage's prefix: never swept.
        _log.warning("%s: not swept, sa_depot did not write it (no checksum recorded)", path)
        return False
    modified = _aware(info.last_modified)
    if modified > report.cutoff:
        report.too_young.append(path)
        return False
    report.orphans.append(path)
    if report.dry_run:
        return True
    try:
        storage.delete(file_id)
    except DepotError as exc:
        report.orphans.remove(path)
        report.errors.append((path, f"removing the orphan failed: {_describe(exc)}"))
        return False
    return True


def _forget_registered(connection: sa.Connection, paths: list[str]) -> None:
    """Delete the registry rows of files the sweep removed: rows that used them were deleted
    or changed where no event could see (raw SQL, another program)."""
    if sa.inspect(connection).has_table(files.name):
        _committed(connection, lambda: file_registry.forget(connection, paths))


def _remove_incomplete(names: list[str], cutoff: datetime, report: CollectReport) -> None:
    # remove_incomplete measures age against the real clock: translate the cutoff.
    older_than = max(datetime.now(timezone.utc) - cutoff, timedelta(0))
    for name in names:
        storage = DepotManager.get(name)
        if not isinstance(storage, _RemovesIncomplete):
            continue
        try:
            report.incomplete.extend(storage.remove_incomplete(older_than=older_than))
        except DepotError as exc:
            report.errors.append((name, f"removing incomplete writes failed: {_describe(exc)}"))


# == helpers ===================================================================================
def load_metadata(spec: str) -> list[sa.MetaData | sa.Table]:
    """Import ``'package.module:attribute'`` (the attribute may be dotted, e.g.
    ``myapp.models:Base.metadata``) and return the MetaData or Tables it names: a MetaData,
    a declarative base, a registry, a Table, or a list of them. For command lines."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(
            f"{spec!r} is not of the form 'package.module:attribute', e.g. "
            "'myapp.models:Base.metadata'"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} (from {spec!r}): {exc}; is the application "
            "installed in this environment, or on PYTHONPATH?"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigurationError(f"{spec!r}: {part!r} not found") from exc
    try:
        tables = _tables(target)
    except (CollectorError, TypeError) as exc:
        raise ConfigurationError(f"{spec!r} names no MetaData: {exc}") from exc
    return list(tables)


def parse_duration(text: str) -> timedelta:
    """``'24h'``, ``'30m'``, ``'2d'``, ``'90s'``, ``'1w'`` or a number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in units else "s"
    number = value[:-1] if value[-1:] in units else value
    try:
        amount = float(number)
    except ValueError:
        raise ConfigurationError(
            f"{text!r} is not a duration: write a number and a unit among s, m, h, d, w "
            "(e.g. '24h')"
        ) from None
    if amount < 0:
        raise ConfigurationError(f"{text!r}: a duration cannot be negative")
    return timedelta(seconds=amount * units[unit])


def _format_delta(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


__all__ = [
    "DEFAULT_GRACE",
    "CollectReport",
    "CollectorError",
    "collect",
    "file_columns",
    "left_alone",
    "load_metadata",
    "parse_duration",
    "sweep_plan",
    "written_storages",
]
