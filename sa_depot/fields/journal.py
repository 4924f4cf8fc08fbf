"""The removal journal: files to remove once the transaction that unreferenced them commits.

The table is :data:`sa_depot.schema.pending_removals`. The session lifecycle writes it through
:func:`record_removals` inside the flush (same connection, same transaction, so a rollback or a
savepoint rollback takes the rows with it), removes the files after the commit, and then calls
:func:`complete_removals` for the files removed and :func:`record_failures` for those whose
removal failed. Rows left behind (failures, or a process that died between the commit and the
removals) are finished by :func:`finish_pending_removals`, which the collector calls.

Rows are identified by ``path``: two transactions may both list a path (both saw the same old
value), and removing the file satisfies both, so completing a path deletes every row for it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.ownership import remove_paths
from sa_depot.io.interfaces import utcnow
from sa_depot.schema import pending_removals

_log = logging.getLogger(__name__)

#: Engines on which the journal table was found (the check costs a query: do it once).
_checked: weakref.WeakKeyDictionary[sa.Engine, bool] = weakref.WeakKeyDictionary()

#: ``IN`` lists are sent in batches of this size.
BATCH_SIZE = 500


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


def ensure_journal(connection: sa.Connection) -> None:
    """Raise :class:`~sa_depot.exceptions.ConfigurationError` if the journal table is missing
    from the database ``connection`` talks to."""
    engine = connection.engine
    if _checked.get(engine):
        return
    if not sa.inspect(connection).has_table(pending_removals.name):
        raise ConfigurationError(
            f"sa_depot's table {pending_removals.name!r} does not exist in the database "
            f"{engine.url.render_as_string(hide_password=True)}; it records the files to "
            "remove after a commit. Run sa_depot's Alembic migration, or "
            "sa_depot.schema.metadata.create_all(engine); or, to remove files after commits "
            "without a journal (crashes then leave files for the collector's sweep), call "
            "sa_depot.fields.lifecycle.configure(journal=False)."
        )
    _checked[engine] = True


def record_removals(connection: sa.Connection, paths: Sequence[str]) -> None:
    """Insert journal rows for ``paths`` in the transaction of ``connection``."""
    if not paths:
        return
    ensure_journal(connection)
    now = utcnow()
    connection.execute(
        pending_removals.insert(),
        [
            {"path": p, "storage": p.split("/", 1)[0], "scheduled_at": now, "attempts": 0}
            for p in paths
        ],
    )


def complete_removals(bind: sa.Engine | sa.Connection, paths: Iterable[str]) -> None:
    """Delete the journal rows of ``paths`` (their files are gone), in a transaction of its
    own on an Engine, or in the current one on a Connection."""
    paths = list(dict.fromkeys(paths))
    with _transaction(bind) as conn:
        for start in range(0, len(paths), BATCH_SIZE):
            batch = paths[start : start + BATCH_SIZE]
            conn.execute(pending_removals.delete().where(pending_removals.c.path.in_(batch)))


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
) -> list[PendingRemoval]:
    """The journal rows scheduled at least ``older_than`` ago, oldest first (one per path)."""
    table = pending_removals
    stmt = (
        sa.select(
            table.c.path,
            sa.func.min(table.c.storage),
            sa.func.min(table.c.scheduled_at),
            sa.func.max(table.c.attempts),
            sa.func.max(table.c.last_error),
        )
        .where(table.c.scheduled_at <= utcnow() - older_than)
        .group_by(table.c.path)
        .order_by(sa.func.min(table.c.scheduled_at), table.c.path)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with _transaction(bind) as conn:
        rows = conn.execute(stmt).all()
    return [
        PendingRemoval(
            path=row[0],
            storage=row[1],
            scheduled_at=_aware(row[2]),
            attempts=int(row[3] or 0),
            last_error=row[4],
        )
        for row in rows
    ]


def finish_pending_removals(
    bind: sa.Engine | sa.Connection,
    *,
    is_referenced: Callable[[str], bool] | None = None,
    older_than: timedelta = timedelta(0),
    limit: int | None = None,
) -> RemovalReport:
    """Remove the files the journal lists and delete their rows.

    ``is_referenced(path)``, when given, is asked first: a path that some committed row
    references (the journal cannot know about rows written by raw SQL) keeps its file and
    only loses its journal row. A collector passes the set of paths its mark phase found.
    """
    report = RemovalReport()
    entries = pending(bind, older_than=older_than, limit=limit)
    to_remove: list[str] = []
    for entry in entries:
        if is_referenced is not None and is_referenced(entry.path):
            report.kept.append(entry.path)
        else:
            to_remove.append(entry.path)
    report.failed = remove_paths(to_remove)
    failed = {path for path, _ in report.failed}
    report.removed = [p for p in to_remove if p not in failed]
    complete_removals(bind, report.removed + report.kept)
    record_failures(bind, report.failed)
    return report


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
    "ensure_journal",
    "finish_pending_removals",
    "pending",
    "record_failures",
    "record_removals",
]
