"""One promotion: the queued file of a row processed and moved to the public storage.

:func:`promote` runs the journal row of one queued path
(:mod:`sa_depot.database.promotions`):

1. it finds the column (a mapped attribute whose ``UploadedFileField`` has ``promote_to``) and
   the row, and reads the row's descriptor: if the row no longer holds the queued file (it was
   replaced or deleted meanwhile), the promotion is cancelled;
2. inside a :class:`~sa_depot.workbench.Workbench`, it streams the queued file into the
   public storage through the column's filters
   (:meth:`~sa_depot.fields.sqlalchemy.FileColumn.promoted_copy`): the result and its
   derivatives;
3. in a new short transaction, it locks the row and writes the promoted descriptor **only if
   the row still holds the queued file** (compare and set on its path); the session lifecycle
   then attaches the promoted files in the registry, detaches the queued one and journals its
   removal, and the promotion's journal row is deleted in the same transaction. After the
   commit the lifecycle removes the queued file. If the row changed meanwhile, the change
   wins: the journal row goes and the promoted copies are removed.

A failure (a filter raising, a storage down) leaves the file queued, counts the attempt and
records the error (:func:`~sa_depot.database.promotions.record_failure`); after
:attr:`Policy.max_attempts` the promotion is ``failed`` until retried.

Every step can be repeated: a promotion killed at any moment is run again from its journal
row, and the files a killed attempt stored without committing are orphans the collector
removes after its grace period.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session, configure_mappers

from sa_depot.database import promotions
from sa_depot.database.promotions import Promotion
from sa_depot.descriptor import PROMOTION_KEY, promotion_target
from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.interfaces import DepotFileInfo, FileFilter
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import utcnow
from sa_depot.orm import records
from sa_depot.orm.mapped import equipped_mappers, file_column, file_fields_of
from sa_depot.workbench import Workbench

_log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What :func:`promote` did."""

    #: The row now holds the promoted file; the queued one goes.
    PROMOTED = "promoted"
    #: The row no longer held the queued file (replaced or deleted): nothing promoted.
    CANCELLED = "cancelled"
    #: The attempt failed; the file stays queued and will be retried after the back-off.
    FAILED = "failed"
    #: The attempt failed and was the last one: the promotion is ``failed`` until retried.
    GAVE_UP = "gave up"
    #: No journal row for the path: promoted already, or its transaction rolled back.
    ABSENT = "absent"


@dataclass
class Policy:
    """How often and how patiently failed promotions are retried."""

    #: Attempts before a promotion is marked failed.
    max_attempts: int = 5
    #: Wait after the first failure; it doubles after each further one.
    backoff: timedelta = timedelta(seconds=2)


policy = Policy()


def configure(*, max_attempts: int | None = None, backoff: timedelta | None = None) -> None:
    """Change the retry policy of promotions, process-wide (see :class:`Policy`)."""
    if max_attempts is not None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        policy.max_attempts = max_attempts
    if backoff is not None:
        policy.backoff = backoff


def reset() -> None:
    """Back to the default policy (for tests)."""
    configure(max_attempts=Policy.max_attempts, backoff=Policy().backoff)


class QueuedForPromotion(FileFilter):
    """Marks a new descriptor as queued for ``target`` (``UploadedFileField`` adds it in
    place of the column's filters, which run at the promotion)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def on_save(self, uploaded_file: DepotFileInfo) -> None:
        uploaded_file[PROMOTION_KEY] = {"state": "queued", "to": self.target}


def is_queued(uploaded: UploadedFile | None) -> bool:
    """Whether ``uploaded`` describes a file still waiting in its queue storage."""
    return uploaded is not None and promotion_target(uploaded) is not None


def promote(engine: sa.Engine, path: str, *, max_attempts: int | None = None) -> Outcome:
    """Run the promotion of the queued file ``path`` journaled in ``engine``'s database (see
    the module docs). Idempotent: a promotion already done, or cancelled, is
    :attr:`Outcome.ABSENT`; a ``failed`` one is left alone (:attr:`Outcome.GAVE_UP`).

    The mapped class holding the column must be imported in this process (a worker imports
    the application's models). ``max_attempts`` overrides the policy's.
    """
    found = promotions.get(engine, path)
    if found is None:
        return Outcome.ABSENT
    if found.failed:
        return Outcome.GAVE_UP
    try:
        mapper, key, field_type = column_of(found)
        primary_key = _primary_key(mapper, found.row_key)
        with Session(engine) as session:
            held = _held(session, mapper, key, primary_key, lock=False)
        if held is None or held.path != path:
            _cancel(engine, path)
            return Outcome.CANCELLED
        with Workbench():
            promoted: UploadedFile = field_type.promoted_copy(held)
    except Exception as exc:  # noqa: BLE001 - any failure of the processing is recorded
        return _failed(engine, path, exc, max_attempts)
    try:
        won = _compare_and_set(engine, mapper, key, primary_key, path, promoted)
    except Exception as exc:  # noqa: BLE001 - rolled back: the lifecycle removed the copies
        return _failed(engine, path, exc, max_attempts)
    if not won:
        record = promoted.lifecycle
        if record is not None:
            records.discard(record)
        return Outcome.CANCELLED
    return Outcome.PROMOTED


def next_attempt_delay(engine: sa.Engine, path: str) -> float | None:
    """Seconds until the queued promotion of ``path`` may be retried (``None`` when it is
    not queued: promoted, cancelled or failed for good)."""
    found = promotions.get(engine, path)
    if found is None or found.failed:
        return None
    if found.next_attempt_at is None:
        return 0.0
    return max(0.0, (found.next_attempt_at - utcnow()).total_seconds())


def run(engine: sa.Engine, path: str) -> float | None:
    """:func:`promote`, then the delay before retrying it (``None``: nothing to retry):
    the job an executor runs."""
    outcome = promote(engine, path)
    if outcome is Outcome.FAILED:
        return next_attempt_delay(engine, path)
    return None


def column_of(found: Promotion) -> tuple[Mapper[Any], str, Any]:
    """``(mapper, attribute key, column type)`` of the column of a journal row.

    :raises ConfigurationError: no mapped class of this process has that column, or its
        column has no ``promote_to``.
    """
    configure_mappers()  # a worker that only imported the models has not configured them yet
    for mapper in equipped_mappers():
        for key, field_type in (file_fields_of(mapper) or {}).items():
            column = file_column(mapper, key)
            if column.table.fullname == found.table_name and column.name == found.column_name:
                if getattr(field_type, "promote_to", None) is None:
                    raise ConfigurationError(
                        f"{found.table_name}.{found.column_name} has no promote_to any more, "
                        f"but {found.path} is queued: declare it again, or promote by hand"
                    )
                return mapper, key, field_type
    raise ConfigurationError(
        f"no mapped class of this process has the column {found.table_name}."
        f"{found.column_name} holding the queued file {found.path}: import the application's "
        "models in the promotion worker (sa-depot promote --metadata myapp.models:Base)"
    )


def _primary_key(mapper: Mapper[Any], row_key: str) -> tuple[Any, ...]:
    values = json.loads(row_key) if row_key else None
    if not isinstance(values, list) or len(values) != len(mapper.primary_key):
        raise ConfigurationError(
            f"the promotion journal does not know the primary key of the row of "
            f"{mapper.class_.__name__} ({row_key!r}): it was inserted by a Core statement "
            "whose keys the database generated; write such rows through the ORM"
        )
    return tuple(values)


def _held(
    session: Session, mapper: Mapper[Any], key: str, primary_key: tuple[Any, ...], *, lock: bool
) -> UploadedFile | None:
    """The descriptor the row holds now (``None``: no row, or no file)."""
    row = session.get(
        mapper.class_, primary_key, with_for_update=lock or None, populate_existing=True
    )
    if row is None:
        return None
    value = getattr(row, key)
    return value if isinstance(value, UploadedFile) else None


def _compare_and_set(
    engine: sa.Engine,
    mapper: Mapper[Any],
    key: str,
    primary_key: tuple[Any, ...],
    path: str,
    promoted: UploadedFile,
) -> bool:
    """Write ``promoted`` into the row if it still holds the queued ``path``; delete the
    journal row either way. Returns whether the row took it."""
    with Session(engine) as session, session.begin():
        row = session.get(mapper.class_, primary_key, with_for_update=True, populate_existing=True)
        held = getattr(row, key) if row is not None else None
        won = isinstance(held, UploadedFile) and held.path == path
        if won:
            setattr(row, key, promoted)  # the lifecycle attaches it, and lets the queued go
            session.flush()
        promotions.finish(session.connection(), path)
    return won


def _cancel(engine: sa.Engine, path: str) -> None:
    with engine.begin() as connection:
        promotions.finish(connection, path)


def _failed(engine: sa.Engine, path: str, exc: BaseException, max_attempts: int | None) -> Outcome:
    _log.warning("sa_depot: the promotion of %s failed: %s", path, exc, exc_info=exc)
    try:
        row = promotions.record_failure(
            engine,
            path,
            exc,
            max_attempts=max_attempts or policy.max_attempts,
            backoff=policy.backoff,
        )
    except sa.exc.SQLAlchemyError as db_error:
        _log.warning("sa_depot could not record the failure of %s: %s", path, db_error)
        return Outcome.FAILED
    if row is not None and row.failed:
        return Outcome.GAVE_UP
    return Outcome.FAILED


__all__ = [
    "Outcome",
    "Policy",
    "QueuedForPromotion",
    "column_of",
    "configure",
    "is_queued",
    "next_attempt_delay",
    "policy",
    "promote",
    "reset",
    "run",
]
