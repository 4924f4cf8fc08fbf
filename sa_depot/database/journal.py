"""The removal journal: files to remove once the transaction that unreferenced them commits.

The table is :data:`sa_depot.database.schema.pending_removals`. When the file registry
(:mod:`sa_depot.database.registry`) finds that a flush let go of the last row using a file, the
session lifecycle writes the file's path through :func:`record_removals` inside that flush
(same connection, same transaction, so a rollback or a savepoint rollback takes the rows with
it), removes the files after the commit, and then hands the files removed to
:func:`defer_completion` and calls :func:`record_failures` for those whose removal failed. Rows
left behind (failures, or a process that died between the commit and the removals) are
finished by :func:`finish_removals`, which the collector calls.

**Completion is batched.** A row whose file is already gone is harmless: finishing it
removes nothing and deletes the row. So the rows of files removed after a commit are not
deleted in a transaction of their own each time (one more commit for every deleting
transaction): their paths wait in memory, per engine, and are deleted together, in one
transaction, once :data:`DEFERRED_LIMIT` paths wait or the oldest has waited
:data:`DEFERRED_SECONDS`. :func:`pending` deletes them before reading, so that it lists only
what is really pending. Paths still waiting when the process ends leave their rows to the
collector. The deletion never runs inside a user's transaction, so it takes no lock there.

Rows are identified by ``path``: two transactions may both list a path (both saw the same old
value), and removing the file satisfies both, so completing a path deletes every row for it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from sa_depot.database.provision import ensure_schema
from sa_depot.database.schema import pending_removals
from sa_depot.descriptor import storage_of
from sa_depot.io.interfaces import utcnow
from sa_depot.manager import remove_paths

_log = logging.getLogger(__name__)

#: ``IN`` lists are sent in batches of this size.
BATCH_SIZE = 500

#: Completed paths kept waiting per engine before their rows are deleted together.
DEFERRED_LIMIT = 100
#: Seconds the oldest completed path may wait before its row is deleted (checked when more
#: paths complete).
DEFERRED_SECONDS = 2.0


#: The journal's statements on the path of every deleting transaction, built once (a prebuilt
#: statement keeps its cache key; one built per call computes it anew).
_INSERT = pending_removals.insert()
_DELETE_PATHS = pending_removals.delete().where(
    pending_removals.c.path.in_(sa.bindparam("paths", expanding=True))
)


@dataclass
class _Waiting:
    since: float
    paths: dict[str, None] = field(default_factory=dict)


#: Paths whose files were removed and whose journal rows are not deleted yet, per engine.
_completed: weakref.WeakKeyDictionary[sa.Engine, _Waiting] = weakref.WeakKeyDictionary()
_completed_lock = threading.Lock()


@dataclass(frozen=True)
class PendingRemoval:
    """One row of the journal."""

    path: str
    storage: str
    scheduled_at: datetime
    attempts: int
    last_error: str | None


@dataclass
class RemovalReport:
    """What :func:`finish_pending_removals` did."""

    #: Paths whose files were removed (or were already gone) and whose rows were deleted.
    removed: list[str] = field(default_factory=list)
    #: Paths still referenced by a row: their journal rows were deleted, the files kept.
    kept: list[str] = field(default_factory=list)
    #: ``(path, error)`` of the removals that failed; their rows stay, ``attempts`` raised.
    failed: list[tuple[str, BaseException]] = field(default_factory=list)


def record_removals(connection: sa.Connection, paths: Sequence[str]) -> None:
    """Insert journal rows for ``paths`` in the transaction of ``connection``."""
    if not paths:
        return
    ensure_schema(connection)
    now = utcnow()
    connection.execute(
        _INSERT,
        [{"path": p, "storage": storage_of(p), "scheduled_at": now, "attempts": 0} for p in paths],
    )


def defer_completion(engine: sa.Engine, paths: Iterable[str]) -> None:
    """The files of ``paths`` were removed: delete their journal rows later, together with
    others, in one transaction on ``engine`` (see the module docs).

    :raises sqlalchemy.exc.SQLAlchemyError: the rows were due and the database refused to
        delete them; the paths keep waiting.
    """
    paths = list(paths)
    if not paths:
        return
    now = time.monotonic()
    with _completed_lock:
        waiting = _completed.get(engine)
        if waiting is None:
            waiting = _completed[engine] = _Waiting(now)
        waiting.paths.update(dict.fromkeys(paths))
        if len(waiting.paths) < DEFERRED_LIMIT and now - waiting.since < DEFERRED_SECONDS:
            return
    flush_completed(engine)


def flush_completed(bind: sa.Engine | sa.Connection) -> None:
    """Delete now the journal rows of the files removed whose completion was deferred
    (:func:`defer_completion`) on the engine of ``bind``: in a transaction of its own on an
    Engine, in the current one on a Connection.

    :raises sqlalchemy.exc.SQLAlchemyError: the database refused; the paths keep waiting.
    """
    engine = bind.engine
    done = _take_completed(engine)
    if done:
        try:
            complete_removals(bind, done)
        except BaseException:
            with _completed_lock:  # kept for a later attempt
                waiting = _completed.setdefault(engine, _Waiting(time.monotonic()))
                waiting.paths.update(dict.fromkeys(done))
            raise


def _take_completed(engine: sa.Engine) -> list[str]:
    with _completed_lock:
        waiting = _completed.pop(engine, None)
    return list(waiting.paths) if waiting else []


def _delete_rows(conn: sa.Connection, paths: Sequence[str]) -> None:
    for start in range(0, len(paths), BATCH_SIZE):
        conn.execute(_DELETE_PATHS, {"paths": list(paths[start : start + BATCH_SIZE])})


def complete_removals(bind: sa.Engine | sa.Connection, paths: Iterable[str]) -> None:
    """Delete the journal rows of ``paths`` (their files are gone), in a transaction of its
    own on an Engine, or in the current one on a Connection."""
    paths = list(dict.fromkeys(paths))
    if not paths:
        return
    with _transaction(bind) as conn:
        _delete_rows(conn, paths)


def record_failures(
    bind: sa.Engine | sa.Connection, failures: Iterable[tuple[str, BaseException]]
) -> None:
    """Count a failed attempt on each path's rows and keep the error for operators."""
    failures = list(failures)
    if not failures:
        return
    now = utcnow()
    with _transaction(bind) as conn:
        for path, error in failures:
            conn.execute(
                pending_removals.update()
                .where(pending_removals.c.path == path)
                .values(
                    attempts=pending_removals.c.attempts + 1,
                    last_attempt_at=now,
                    last_error=f"{type(error).__name__}: {error}"[:2000],
                )
            )


def pending(
    bind: sa.Engine | sa.Connection,
    *,
    older_than: timedelta = timedelta(0),
    limit: int | None = None,
    after: tuple[datetime, str] | None = None,
) -> list[PendingRemoval]:
    """The journal's paths scheduled at least ``older_than`` ago, oldest first, each once.

    ``after`` (the ``(scheduled_at, path)`` of the last entry of a previous page) and
    ``limit`` read the journal page by page, in bounded memory. Rows of files already removed
    whose completion was deferred in this process (:func:`defer_completion`) are deleted
    first.
    """
    flush_completed(bind)
    table = pending_removals
    stmt = (
        sa.select(
            table.c.path,
            table.c.storage,
            table.c.scheduled_at,
            table.c.attempts,
            table.c.last_error,
        )
        .where(table.c.scheduled_at <= utcnow() - older_than)
        .order_by(table.c.scheduled_at, table.c.path)
    )
    if after is not None:
        stmt = stmt.where(
            sa.or_(
                table.c.scheduled_at > after[0],
                sa.and_(table.c.scheduled_at == after[0], table.c.path > after[1]),
            )
        )
    if limit is not None:
        stmt = stmt.limit(limit)
    with _transaction(bind) as conn:
        rows = conn.execute(stmt).all()
    entries: dict[str, PendingRemoval] = {}
    for row in rows:
        if row[0] not in entries:
            entries[row[0]] = PendingRemoval(
                path=row[0],
                storage=row[1],
                scheduled_at=_aware(row[2]),
                attempts=int(row[3] or 0),
                last_error=row[4],
            )
    return list(entries.values())


def finish_removals(
    bind: sa.Engine | sa.Connection, paths: Sequence[str], referenced: Iterable[str] = ()
) -> RemovalReport:
    """Remove the files of journaled ``paths`` and delete their rows; ``referenced`` paths
    (some committed row uses them: the journal cannot know of rows written by raw SQL) keep
    their files and only lose their rows. A failed removal keeps its rows, with ``attempts``
    raised and the error recorded."""
    report = RemovalReport()
    keep = set(referenced)
    report.kept = [p for p in paths if p in keep]
    to_remove = [p for p in paths if p not in keep]
    report.failed = remove_paths(to_remove)
    failed = {path for path, _ in report.failed}
    report.removed = [p for p in to_remove if p not in failed]
    complete_removals(bind, report.removed + report.kept)
    record_failures(bind, report.failed)
    return report


def finish_pending_removals(
    bind: sa.Engine | sa.Connection,
    *,
    is_referenced: Callable[[str], bool] | None = None,
    older_than: timedelta = timedelta(0),
    limit: int | None = None,
) -> RemovalReport:
    """Remove the files the journal lists (up to ``limit`` paths) and delete their rows.

    ``is_referenced(path)``, when given, is asked first (see :func:`finish_removals`).
    """
    paths = [entry.path for entry in pending(bind, older_than=older_than, limit=limit)]
    referenced = [p for p in paths if is_referenced is not None and is_referenced(p)]
    return finish_removals(bind, paths, referenced)


@contextmanager
def _transaction(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    """A transaction of its own on an Engine; the caller's on a Connection."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


__all__ = [
    "PendingRemoval",
    "RemovalReport",
    "complete_removals",
    "defer_completion",
    "finish_pending_removals",
    "finish_removals",
    "flush_completed",
    "pending",
    "record_failures",
    "record_removals",
]
