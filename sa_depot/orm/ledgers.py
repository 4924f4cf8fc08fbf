"""What each transaction did to files, and what happens to them when it ends.

Each *boundary* :class:`~sqlalchemy.orm.SessionTransaction` (the root transaction, and each
SAVEPOINT of ``begin_nested()``) gets a :class:`Ledger` the first time a file concerns it,
kept in its session's ``info``. A ledger lists

* ``uploads``: the :class:`~sa_depot.orm.records.UploadRecord` of files uploaded for objects
  of the session (attached at assignment, at ``session.add()``, or at the flush that writes
  them; a record moves to the ledger of the innermost transaction that flushes it);
* ``removals``: the files that a flush (or an ORM-enabled statement) of this transaction let
  go of last, as the file registry decided (:func:`sa_depot.database.registry.detach`),
  already written to the removal journal on the same connection. Files the registry does not
  know (rows written before it, not adopted) are journaled too, marked *to verify*: after the
  commit, :func:`~sa_depot.database.references.referenced_paths` asks the file columns whether
  a committed row still references them (a scan, until the rows are adopted), and those are
  kept.

When a SAVEPOINT is released its ledger is merged into its parent's. When one is rolled back,
its uploads are removed and its removals forgotten (the database forgets their registry and
journal rows). When the root transaction commits, flushed uploads are kept, uploads that never
reached the database are removed, and the removals are carried out, their journal rows deleted
(in batches: :func:`~sa_depot.database.journal.defer_completion`; when a removal fails, kept
for the collector). When it rolls back or the session closes,
every upload is removed.

Under ``AsyncSession`` these removals run in worker threads, off the event loop
(:mod:`sa_depot.orm.offload`); the journal's statements stay on the session's connection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction

from sa_depot.database import journal, promotions, registry
from sa_depot.database.provision import ensure_schema
from sa_depot.database.references import forget_tables, referenced_paths
from sa_depot.descriptor import promotion_target
from sa_depot.fields.upload import paths_held, uploaded_files_in
from sa_depot.manager import remove_paths
from sa_depot.orm import promotions as promotion_executor
from sa_depot.orm import records
from sa_depot.orm.mapped import equipped_mappers, file_column, file_fields_of
from sa_depot.orm.offload import storage_io
from sa_depot.orm.records import UploadRecord
from sa_depot.orm.settings import settings

_log = logging.getLogger(__name__)

_INFO_KEY = "sa_depot.ledgers"


class Removal(NamedTuple):
    """A file to remove once the transaction commits."""

    path: str
    #: The engine of the connection whose transaction let go of the file.
    engine: sa.Engine
    #: Whether that transaction wrote it to the removal journal.
    journaled: bool
    #: Whether the registry did not know the file: the columns are asked before removing it.
    verify: bool = False


class RowChange(NamedTuple):
    """A row a flush changes or deletes, whose files are registered and released once the
    flush has written every row (:func:`apply_changes`)."""

    connection: sa.Connection
    ref: registry.RowRef
    #: What the row held (read under its lock).
    old: Any
    #: What it holds now (``None`` for a deleted row).
    new: Any


@dataclass(eq=False)
class Ledger:
    """What one boundary transaction did to files (see the module docs)."""

    uploads: list[UploadRecord] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    removal_paths: set[str] = field(default_factory=set)
    connections: set[sa.Connection] = field(default_factory=set)
    #: Rows of the flush under way, waiting for :func:`apply_changes`.
    changes: list[RowChange] = field(default_factory=list)
    committed: bool = False

    def absorb(self, child: Ledger) -> None:
        """A released SAVEPOINT's ledger joins its parent's."""
        records.pass_to_parent(child, self)
        for removal in child.removals:
            if removal.path not in self.removal_paths:
                self.removals.append(removal)
                self.removal_paths.add(removal.path)
        self.connections |= child.connections


# == finding ledgers =============================================================================
def _ledgers(session: Session) -> dict[SessionTransaction, Ledger]:
    found: dict[SessionTransaction, Ledger] | None = session.info.get(_INFO_KEY)
    if found is None:
        found = session.info[_INFO_KEY] = {}
    return found


def boundary_of(transaction: SessionTransaction) -> SessionTransaction:
    """The root or SAVEPOINT transaction whose state ``transaction`` shares."""
    while not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def current_boundary(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def ledger(session: Session, transaction: SessionTransaction) -> Ledger:
    """The ledger of ``transaction`` (a boundary), created on first use."""
    ledgers = _ledgers(session)
    with records.lock:
        found = ledgers.get(transaction)
        if found is None:
            found = ledgers[transaction] = Ledger()
        return found


def _chain(session: Session, transaction: SessionTransaction) -> Iterator[Ledger]:
    ledgers = _ledgers(session)
    current: SessionTransaction | None = transaction
    while current is not None:
        found = ledgers.get(current)
        if found is not None:
            yield found
        current = current.parent


def losing(session: Session, transaction: SessionTransaction, paths: Iterable[str]) -> bool:
    """Whether the transaction (or an enclosing one) let go of any of ``paths``."""
    # most flushes write new files in transactions that let go of none: no paths to compare
    letting_go = [
        found.removal_paths for found in _chain(session, transaction) if found.removal_paths
    ]
    if not letting_go:
        return False
    wanted = set(registry.canonical(paths))
    return any(wanted & removal_paths for removal_paths in letting_go)


# == what flushes and statements report ==========================================================
def register(connection: sa.Connection, ref: registry.RowRef, value: Any, old: Any = None) -> None:
    """The row ``ref`` now holds ``value`` (an UploadedFile, a list of them, or ``None``)
    where it held ``old``: the files of ``value`` that ``old`` did not own join the registry.
    A fresh upload's first row registers its files
    (:func:`~sa_depot.database.registry.register_new`); any other descriptor attaches to files
    that may be used elsewhere already (:func:`~sa_depot.database.registry.attach`)."""
    register_rows(connection, [(ref, value, old)])


def register_rows(
    connection: sa.Connection, rows: Sequence[tuple[registry.RowRef, Any, Any]]
) -> None:
    """:func:`register` for several ``(ref, value, old)`` rows (the rows of one statement):
    the fresh uploads of all of them are registered with two statements in all, and the
    promotions of fresh queued files journaled with them."""
    fresh: list[tuple[registry.RowRef, list[str]]] = []
    known: list[tuple[registry.RowRef, list[str]]] = []
    queued: list[tuple[registry.RowRef, list[tuple[str, str]]]] = []
    for ref, value, old in rows:
        held = set(paths_held(old))
        row_fresh: list[str] = []
        row_known: list[str] = []
        row_queued: list[tuple[str, str]] = []  # (queued path, target storage) to journal
        for uploaded in uploaded_files_in(value):
            paths = [p for p in uploaded.files if p not in held]
            if not paths:
                continue
            held.update(paths)  # a file at two positions of a list is held once
            record = uploaded.lifecycle
            first = record is not None and record.first_registration()
            (row_fresh if first else row_known).extend(paths)
            target = promotion_target(uploaded)
            if first and target is not None:
                row_queued.append((uploaded.path, target))
        if row_fresh:
            fresh.append((ref, row_fresh))
        if row_known:
            known.append((ref, row_known))
        if row_queued:
            queued.append((ref, row_queued))
    if not (fresh or known):
        return
    ensure_schema(connection)
    if fresh:
        registry.register_new_rows(connection, fresh)
    for ref, paths in known:
        registry.attach(connection, ref, paths)
    for ref, items in queued:  # in this transaction: it commits, or rolls back, with the row
        promotions.enqueue(connection, ref, items)


def release(
    session: Session,
    transaction: SessionTransaction,
    connection: sa.Connection,
    ref: registry.RowRef,
    value: Any,
    kept: Any = None,
) -> None:
    """The row ``ref`` no longer holds ``value`` (an UploadedFile, a list of them) but
    ``kept``: the files of ``value`` that ``kept`` does not own are let go of. Those nobody
    else uses are journaled and removed once the transaction commits; files the registry
    does not know are checked in the columns after the commit."""
    release_rows(session, transaction, connection, [(ref, value, kept)])


def release_rows(
    session: Session,
    transaction: SessionTransaction,
    connection: sa.Connection,
    rows: Sequence[tuple[registry.RowRef, Any, Any]],
) -> None:
    """:func:`release` for several ``(ref, value, kept)`` rows (the rows of one flush or
    statement): one statement of each kind for all of them
    (:func:`~sa_depot.database.registry.detach_rows`, one journal ``INSERT``)."""
    found = ledger(session, transaction)
    found.connections.add(connection)
    letting_go: list[tuple[registry.RowRef, list[str]]] = []
    queued: list[str] = []
    for ref, value, kept in rows:
        staying = set(paths_held(kept))
        paths = [p for p in paths_held(value) if p not in staying]
        if not paths:
            continue
        letting_go.append((ref, paths))
        queued.extend(
            u.path for u in uploaded_files_in(value) if promotion_target(u) and u.path in paths
        )
    if not letting_go:
        return
    ensure_schema(connection)
    if queued:  # let go of before its promotion: nothing left to promote
        promotions.cancel(connection, queued)
    outcome = registry.detach_rows(connection, letting_go)
    if outcome.unregistered:
        _log.debug(
            "%s.%s (and %d more row(s)) let go of %d file(s) the registry does not know (rows "
            "not adopted): the file columns are checked after the commit; sa-depot adopt "
            "makes that a lookup",
            letting_go[0][0].table,
            letting_go[0][0].column,
            len(letting_go) - 1,
            len(outcome.unregistered),
        )
    to_verify = set(outcome.unregistered)
    fresh = [p for p in [*outcome.released, *outcome.unregistered] if p not in found.removal_paths]
    if not fresh:
        return
    if settings.journal:
        journal.record_removals(connection, fresh)
    found.removals.extend(
        Removal(p, connection.engine, settings.journal, p in to_verify) for p in fresh
    )
    found.removal_paths.update(fresh)


def defer_change(
    session: Session,
    transaction: SessionTransaction,
    connection: sa.Connection,
    ref: registry.RowRef,
    old: Any,
    new: Any,
) -> None:
    """The row ``ref``, locked by this flush, is about to hold ``new`` where it held ``old``
    (``None`` for a deleted row): what :func:`register` and :func:`release` do for it waits
    in the ledger until :func:`apply_changes`, which does it for every row of the flush at
    once."""
    found = ledger(session, transaction)
    found.connections.add(connection)
    found.changes.append(RowChange(connection, ref, old, new))


def apply_changes(session: Session, transaction: SessionTransaction) -> None:
    """Register and release the files of the rows :func:`defer_change` recorded in the
    ledger of ``transaction`` (a flush has written them): the new files of every row first,
    so that a file passing from one row to another is never let go of, then the old ones.
    A constant number of statements per connection, whatever the number of rows."""
    found = _ledgers(session).get(transaction)
    if found is None or not found.changes:
        return
    changes, found.changes = found.changes, []
    by_connection: dict[sa.Connection, list[RowChange]] = {}
    for change in changes:
        by_connection.setdefault(change.connection, []).append(change)
    for connection, rows in by_connection.items():
        register_rows(connection, [(c.ref, c.new, c.old) for c in rows])
        release_rows(session, transaction, connection, [(c.ref, c.old, c.new) for c in rows])


# == the end of a transaction ====================================================================
def mark_committed(session: Session) -> None:
    transaction = current_boundary(session)  # the one committing (its children are closed)
    if transaction is not None:
        found = _ledgers(session).get(transaction)
        if found is not None:
            found.committed = True


def transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    """Settle the ledger of ``transaction``, which just ended (see the module docs)."""
    with records.lock:
        found = _ledgers(session).pop(transaction, None)
    if found is None:
        return
    if found.committed and transaction.nested:
        assert transaction.parent is not None
        ledger(session, boundary_of(transaction.parent)).absorb(found)
    elif found.committed:
        _finish_commit(found, session)
    else:
        if not transaction.nested:  # rolled back: their journal rows too (after a SAVEPOINT's
            for connection in found.connections:  # the outer ones still commit: submitting
                promotions.take_enqueued(connection)  # a path whose row is gone does nothing)
        _remove(records.end_of_transaction(found, committed=False))


def _remove(discarded: list[UploadRecord]) -> None:
    """Remove the files of ``discarded`` records, off the event loop under AsyncSession."""
    if discarded:  # most transactions discard nothing: no trip to a worker thread then
        storage_io(records.remove_files, discarded)


def _finish_commit(found: Ledger, session: Session) -> None:
    _remove(records.end_of_transaction(found, committed=True))
    outer = any(conn.in_transaction() for conn in found.connections if not conn.closed)
    for connection in found.connections:
        queued = promotions.take_enqueued(connection)
        if queued and not outer:  # under an outer transaction, `sa-depot promote` runs them
            storage_io(promotion_executor.submit, connection.engine, queued)  # a broker's I/O
    if not found.removals:
        return
    if outer:
        # The session joined a transaction it does not own (Session(bind=connection), the
        # test-suite pattern): its "commit" is not final. Whatever happens to the outer
        # transaction, the journal rows share its fate and the collector finishes them.
        _log.debug(
            "outer transaction still open: %d removals left to the collector", len(found.removals)
        )
        return
    _remove_after_commit(found.removals, session)


def _remove_after_commit(removals: Sequence[Removal], session: Session) -> None:
    kept: set[str] = set()  # referenced: the file stays, its journal row goes
    unchecked: set[str] = set()  # the check failed: file and journal row both stay
    to_verify = [r.path for r in removals if r.verify]
    if to_verify and settings.check_references:
        try:
            kept = still_referenced(session, to_verify)
        except sa.exc.SQLAlchemyError as exc:  # the commit succeeded: do not hide that
            _log.warning(
                "sa_depot could not check whether committed rows still reference files the "
                "registry does not know (%s), so it removes none of them; the collector will: "
                "%s",
                exc,
                ", ".join(to_verify),
            )
            unchecked = set(to_verify)
    by_engine: dict[tuple[sa.Engine, bool], list[str]] = {}
    for removal in removals:
        by_engine.setdefault((removal.engine, removal.journaled), []).append(removal.path)
    for (engine, journaled), paths in by_engine.items():
        failures = storage_io(
            remove_paths, [p for p in paths if p not in kept and p not in unchecked]
        )
        if not journaled:
            continue
        failed = {path for path, _ in failures} | unchecked
        try:
            journal.record_failures(engine, failures)
            journal.defer_completion(engine, [p for p in paths if p not in failed])
        except sa.exc.SQLAlchemyError as exc:  # the commit succeeded: do not hide that
            _log.warning(
                "sa_depot could not update its removal journal after a commit (%s); the "
                "collector will finish these removals: %s",
                exc,
                ", ".join(paths),
            )


def still_referenced(session: Session, paths: Sequence[str]) -> set[str]:
    """Those of ``paths`` that a committed row of a file column of any equipped mapper
    references, read in a transaction of its own on the engine each mapper is bound to in
    ``session`` (one ``LIKE`` query per column: see
    :func:`~sa_depot.database.references.referenced_paths`)."""
    columns: dict[sa.Engine, list[sa.Column[Any]]] = {}
    for mapper in equipped_mappers():
        try:
            bind = session.get_bind(mapper=mapper)
        except sa.exc.UnboundExecutionError:
            continue  # this session cannot reach the mapper's table
        engine = bind.engine if isinstance(bind, sa.Connection) else bind
        fields = file_fields_of(mapper) or {}
        columns.setdefault(engine, []).extend(file_column(mapper, key) for key in fields)
    found: set[str] = set()
    for engine, engine_columns in columns.items():
        try:
            found |= _referenced_in(engine, engine_columns, paths)
        except sa.exc.DBAPIError:  # a table dropped since it was seen? look again, once
            forget_tables(engine)
            found |= _referenced_in(engine, engine_columns, paths)
    return found


def _referenced_in(
    engine: sa.Engine, columns: list[sa.Column[Any]], paths: Sequence[str]
) -> set[str]:
    with engine.connect() as connection, connection.begin():
        return referenced_paths(connection, columns, paths)


__all__ = [
    "Ledger",
    "Removal",
    "RowChange",
    "apply_changes",
    "boundary_of",
    "current_boundary",
    "defer_change",
    "ledger",
    "losing",
    "mark_committed",
    "register",
    "register_rows",
    "release",
    "release_rows",
    "still_referenced",
    "transaction_ended",
]
