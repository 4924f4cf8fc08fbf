"""The promotion journal: queued files waiting to be processed and moved to public storage.

Table :data:`~sa_depot.database.schema.promotions`, one row per queued file, keyed by its
``'storage/file_id'`` path. The session lifecycle writes a row (:func:`enqueue`) in the
transaction that stores the row holding the queued file, on the same connection, so that a
rollback (or a SAVEPOINT rollback) takes it back and a commit makes it durable with the row:
a process killed after the commit leaves the row for a worker or the collector to finish.

A promotion deletes its row (:func:`finish`) in the short transaction that writes the
promoted descriptor, or when it finds the row holding the queued file replaced or deleted.
A failed attempt raises ``attempts``, records the error and sets ``next_attempt_at`` (an
exponential back-off); after ``max_attempts`` the row's state is ``'failed'`` and it waits for
an operator (:func:`retry_failed`, ``sa-depot promote --retry-failed``).

Running a promotion needs the ORM (the column's filters and upload type): that is
:mod:`sa_depot.promotion`; this module only reads and writes the journal.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from sa_depot.database.provision import ensure_schema
from sa_depot.database.registry import RowRef
from sa_depot.database.schema import promotions
from sa_depot.io.interfaces import utcnow

#: States of a journal row.
QUEUED = "queued"
FAILED = "failed"

#: Longest error text kept in ``last_error``.
ERROR_LENGTH = 2000

#: Paths journaled on each connection whose transaction has not ended yet: the lifecycle
#: submits them to the executor once that transaction commits (:func:`take_enqueued`).
_enqueued: weakref.WeakKeyDictionary[sa.Connection, list[str]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

#: :func:`cancel`'s statement, on the path of transactions releasing queued files: built once.
_CANCEL = promotions.delete().where(promotions.c.path.in_(sa.bindparam("paths", expanding=True)))


@dataclass(frozen=True)
class Promotion:
    """One row of the journal."""

    path: str
    target: str
    table_name: str
    column_name: str
    row_key: str
    state: str
    queued_at: datetime
    attempts: int
    last_attempt_at: datetime | None
    last_error: str | None
    next_attempt_at: datetime | None

    @property
    def failed(self) -> bool:
        return self.state == FAILED


def enqueue(connection: sa.Connection, ref: RowRef, queued: Iterable[tuple[str, str]]) -> None:
    """Journal the promotion of each ``(queued path, target storage)`` of the row ``ref``, in
    the transaction of ``connection``; :func:`take_enqueued` gives the paths back for the
    after-commit submission. A path already journaled (the same descriptor written again) is
    left as it is."""
    rows: list[dict[str, Any]] = [
        {
            "path": path,
            "target": target,
            "table_name": ref.table,
            "column_name": ref.column,
            "row_key": ref.key,
            "state": QUEUED,
            "queued_at": utcnow(),
            "attempts": 0,
        }
        for path, target in queued
    ]
    if not rows:
        return
    ensure_schema(connection)
    present = set(
        connection.execute(
            sa.select(promotions.c.path).where(promotions.c.path.in_([r["path"] for r in rows]))
        ).scalars()
    )
    fresh = [row for row in rows if row["path"] not in present]
    if fresh:
        connection.execute(promotions.insert(), fresh)
    with _lock:
        _enqueued.setdefault(connection, []).extend(row["path"] for row in fresh)


def take_enqueued(connection: sa.Connection) -> list[str]:
    """The paths :func:`enqueue` journaled on ``connection`` since the last call, forgotten
    here (the caller submits them after a commit, or drops them after a rollback)."""
    with _lock:
        return _enqueued.pop(connection, [])


def get(bind: sa.Engine | sa.Connection, path: str) -> Promotion | None:
    """The journal row of the queued file ``path``, or ``None`` (promoted, or cancelled)."""
    statement = sa.select(promotions).where(promotions.c.path == path)
    if isinstance(bind, sa.Connection):
        row = bind.execute(statement).first()
    else:
        with bind.connect() as connection:
            row = connection.execute(statement).first()
    return None if row is None else _promotion(row._mapping)


def listing(
    bind: sa.Engine, states: Sequence[str] = (QUEUED, FAILED), limit: int | None = None
) -> list[Promotion]:
    """The journal rows in ``states``, oldest first (an empty list when the table is
    missing: nothing was ever queued)."""
    statement = (
        sa.select(promotions)
        .where(promotions.c.state.in_(list(states)))
        .order_by(promotions.c.queued_at, promotions.c.path)
        .limit(limit)
    )
    with bind.connect() as connection:
        if not sa.inspect(connection).has_table(promotions.name):
            return []
        return [_promotion(row._mapping) for row in connection.execute(statement)]


def due(
    bind: sa.Engine, *, now: datetime | None = None, older_than: timedelta = timedelta(0)
) -> list[str]:
    """Paths of queued promotions that may run now: journaled at least ``older_than`` before
    ``now``, and past their back-off."""
    now = now or utcnow()
    statement = (
        sa.select(promotions.c.path)
        .where(
            promotions.c.state == QUEUED,
            promotions.c.queued_at <= now - older_than,
            sa.or_(promotions.c.next_attempt_at.is_(None), promotions.c.next_attempt_at <= now),
        )
        .order_by(promotions.c.queued_at, promotions.c.path)
    )
    with bind.connect() as connection:
        if not sa.inspect(connection).has_table(promotions.name):
            return []
        return list(connection.execute(statement).scalars())


def finish(connection: sa.Connection, path: str) -> None:
    """Delete the journal row of ``path`` (promoted or cancelled), in the caller's
    transaction."""
    connection.execute(promotions.delete().where(promotions.c.path == path))


def cancel(connection: sa.Connection, paths: Sequence[str]) -> None:
    """Delete the journal rows of ``paths``, queued files a row let go of (replaced or
    deleted) before their promotion, in the caller's transaction."""
    connection.execute(_CANCEL, {"paths": list(paths)})


def record_failure(
    bind: sa.Engine,
    path: str,
    error: BaseException,
    *,
    max_attempts: int,
    backoff: timedelta,
    now: datetime | None = None,
) -> Promotion | None:
    """Count a failed attempt of ``path``: ``attempts`` raised, the error kept, the next
    attempt not before ``backoff * 2 ** (attempts - 1)``; the state becomes ``'failed'`` at
    ``max_attempts``. Returns the updated row (``None`` if it is gone)."""
    now = now or utcnow()
    text = f"{type(error).__name__}: {error}"[:ERROR_LENGTH]
    with bind.begin() as connection:
        row = connection.execute(
            sa.select(promotions.c.attempts).where(promotions.c.path == path).with_for_update()
        ).first()
        if row is None:
            return None
        attempts = int(row.attempts) + 1
        connection.execute(
            promotions.update()
            .where(promotions.c.path == path)
            .values(
                attempts=attempts,
                last_attempt_at=now,
                last_error=text,
                state=FAILED if attempts >= max_attempts else QUEUED,
                next_attempt_at=now + backoff * (2 ** (attempts - 1)),
            )
        )
        return get(connection, path)


def retry_failed(bind: sa.Engine, paths: Iterable[str] | None = None) -> list[str]:
    """Put failed promotions (all, or those of ``paths``) back in the queue, their attempts
    reset; return their paths."""
    with bind.begin() as connection:
        if not sa.inspect(connection).has_table(promotions.name):
            return []
        criteria = [promotions.c.state == FAILED]
        if paths is not None:
            criteria.append(promotions.c.path.in_(list(paths)))
        found = list(connection.execute(sa.select(promotions.c.path).where(*criteria)).scalars())
        if found:
            connection.execute(
                promotions.update()
                .where(promotions.c.path.in_(found))
                .values(state=QUEUED, attempts=0, next_attempt_at=None)
            )
        return found


def queued_paths(connection: sa.Connection, paths: Sequence[str]) -> set[str]:
    """Those of ``paths`` that the journal holds (queued or failed): files a promotion will
    still read, which the collector must keep."""
    if not paths or not sa.inspect(connection).has_table(promotions.name):
        return set()
    return set(
        connection.execute(
            sa.select(promotions.c.path).where(promotions.c.path.in_(list(paths)))
        ).scalars()
    )


def _promotion(row: sa.RowMapping) -> Promotion:
    return Promotion(
        path=row["path"],
        target=row["target"],
        table_name=row["table_name"],
        column_name=row["column_name"],
        row_key=row["row_key"],
        state=row["state"],
        queued_at=_aware(row["queued_at"]) or utcnow(),
        attempts=int(row["attempts"]),
        last_attempt_at=_aware(row["last_attempt_at"]),
        last_error=row["last_error"],
        next_attempt_at=_aware(row["next_attempt_at"]),
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def forget_enqueued() -> None:
    """Forget the paths waiting for their transaction's end (for tests)."""
    with _lock:
        _enqueued.clear()


__all__ = [
    "FAILED",
    "QUEUED",
    "Promotion",
    "cancel",
    "due",
    "enqueue",
    "finish",
    "forget_enqueued",
    "get",
    "listing",
    "queued_paths",
    "record_failure",
    "retry_failed",
    "take_enqueued",
]
