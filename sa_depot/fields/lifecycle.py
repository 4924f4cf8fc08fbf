"""The session lifecycle: files live and die with the transaction that saved or replaced them.

What it guarantees, and where its limits lie, is documented in docs/orm.md. How:

**Ledgers.** Each *boundary* :class:`~sqlalchemy.orm.SessionTransaction` (the root
transaction, and each SAVEPOINT of ``begin_nested()``) gets a :class:`Ledger` the first time a
file concerns it. A ledger lists

* ``uploads``: the :class:`~sa_depot.fields.ownership.UploadRecord` of files uploaded for
  objects of the session (attached at assignment, at ``session.add()``, or at the flush that
  writes them; a record moves to the ledger of the innermost transaction that flushes it);
* ``removals``: the files whose row was updated or deleted by a flush (or an ORM-enabled
  ``update()``/``delete()``) in this transaction, already written to the removal journal
  (:mod:`sa_depot.fields.journal`) on the same connection.

When a SAVEPOINT is released its ledger is merged into its parent's. When one is rolled back,
its uploads are removed and its removals forgotten (the database forgets their journal rows).
When the root transaction commits, flushed uploads are kept, uploads that never reached the
database are removed, and the removals are carried out, their journal rows deleted (or, when a
removal fails, kept for the collector). When it rolls back or the session closes, every upload
is removed.

**Events.** :func:`watch_mappers` (called by ``UploadedFileField()``, never at import)
listens for ``mapper_configured`` and installs the Session listeners (``before_attach``,
``after_commit``, ``after_transaction_end``, ``do_orm_execute``). A mapper with
UploadedFileField columns gets attribute ``set`` listeners (content becomes an UploadedFile)
and ``before_insert``/``before_update``/``before_delete`` listeners (old values are found,
copies made, removals journaled). :func:`uninstall` removes every listener (tests).

**One row per file.** A stored file belongs to one row. Writing a descriptor that another row
holds (``b.attachment = a.attachment``) stores a copy for the second row at its flush, so that
removing either row's file can never break the other. A descriptor that equals the row's
current value is left alone. Rows written otherwise (filedepot, raw SQL) may share a file all
the same: before removing files after a commit, :func:`still_referenced` asks the database which
of them a committed row still references, and those are kept (``configure(check_references=)``).

**Bulk statements.** An ORM-enabled ``delete()``, or an ``update()`` writing a file column,
first selects the matching rows ``FOR UPDATE`` (their descriptors and primary keys), then runs
restricted to those primary keys, so that a row committed by another transaction in between is
left alone rather than changed without its file being journaled.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import (
    InstanceState,
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    configure_mappers,
)
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import BindParameter

from sa_depot.exceptions import FileDiscarded, UnsupportedContent
from sa_depot.fields import journal
from sa_depot.fields.ownership import (
    SOME_ROW,
    UploadRecord,
    UploadState,
    lock,
    remove_abandoned,
    remove_paths,
)
from sa_depot.fields.references import forget_tables, referenced_paths
from sa_depot.fields.upload import UploadedFile

if TYPE_CHECKING:
    from sa_depot.fields.sqlalchemy import UploadedFileField

_log = logging.getLogger(__name__)


@dataclass
class Settings:
    #: Write the removal journal (see :func:`configure`).
    journal: bool = True
    #: Keep files that committed rows still reference (see :func:`configure`).
    check_references: bool = True


settings = Settings()


def configure(*, journal: bool | None = None, check_references: bool | None = None) -> None:
    """Change how the lifecycle works, process-wide.

    :param journal: with ``False``, replaced and deleted files are still removed after the
        commit, but nothing is written to ``sa_depot_pending_removals``: a crash between the
        commit and the removals, or a failing removal, leaves the files to the collector's
        sweep (after its grace period) instead of its journal pass. Use it only if you cannot
        create the table.
    :param check_references: with ``True`` (the default), before removing the files a commit
        unreferenced, the lifecycle asks the database whether a committed row of any
        ``UploadedFileField`` column it watches still references them, and keeps those. The
        ORM never makes two rows share a file, but rows written by filedepot or by raw SQL
        can. The check costs one query per file column for each committed transaction that
        removes files (a scan of the column, narrowed by ``LIKE``): turn it off on large
        tables if no two rows can share a file.
    """
    if journal is not None:
        settings.journal = journal
    if check_references is not None:
        settings.check_references = check_references


# == ledgers ===================================================================================
class Removal(NamedTuple):
    """A file to remove once the transaction commits."""

    path: str
    #: The engine of the connection whose transaction unreferenced the file.
    engine: sa.Engine
    #: Whether that transaction wrote it to the removal journal.
    journaled: bool


@dataclass(eq=False)
class Ledger:
    """What one boundary transaction did to files (see the module docs)."""

    uploads: list[UploadRecord] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    removal_paths: set[str] = field(default_factory=set)
    connections: set[sa.Connection] = field(default_factory=set)
    committed: bool = False

    def adopt(self, record: UploadRecord) -> None:
        """Make this transaction answer for ``record`` (taking it from another ledger)."""
        with lock:
            previous = record.ledger
            if previous is self:
                return
            if previous is not None:
                previous.uploads.remove(record)
            record.ledger = self
            record.release()
            self.uploads.append(record)

    def absorb(self, child: Ledger) -> None:
        """A released SAVEPOINT's ledger joins its parent's."""
        with lock:
            for record in child.uploads:
                record.ledger = self
                self.uploads.append(record)
            child.uploads = []
        for removal in child.removals:
            if removal.path not in self.removal_paths:
                self.removals.append(removal)
                self.removal_paths.add(removal.path)
        self.connections |= child.connections


_ledgers: weakref.WeakKeyDictionary[SessionTransaction, Ledger] = weakref.WeakKeyDictionary()


def _boundary_of(transaction: SessionTransaction) -> SessionTransaction:
    """The root or SAVEPOINT transaction whose state ``transaction`` shares."""
    while not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def _current_boundary(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def _ledger(transaction: SessionTransaction) -> Ledger:
    with lock:
        ledger = _ledgers.get(transaction)
        if ledger is None:
            ledger = _ledgers[transaction] = Ledger()
        return ledger


def _ledger_chain(transaction: SessionTransaction) -> Iterator[Ledger]:
    current: SessionTransaction | None = transaction
    while current is not None:
        ledger = _ledgers.get(current)
        if ledger is not None:
            yield ledger
        current = current.parent


def _scheduled_for_removal(transaction: SessionTransaction, paths: Iterable[str]) -> bool:
    wanted = set(paths)
    return any(wanted & ledger.removal_paths for ledger in _ledger_chain(transaction))


def _schedule_removals(
    transaction: SessionTransaction, connection: sa.Connection, paths: Sequence[str]
) -> None:
    ledger = _ledger(transaction)
    ledger.connections.add(connection)
    fresh = [p for p in dict.fromkeys(paths) if p not in ledger.removal_paths]
    if not fresh:
        return
    if settings.journal:
        journal.record_removals(connection, fresh)
    ledger.removals.extend(Removal(p, connection.engine, settings.journal) for p in fresh)
    ledger.removal_paths.update(fresh)


# == session events ============================================================================
def _on_before_attach(session: Session, instance: object) -> None:
    state = instance_state(instance)
    fields = _mapper_fields.get(state.mapper)
    if not fields:
        return
    transaction = _current_boundary(session)
    if transaction is None:  # pragma: no cover - attaching always begins a transaction
        return
    for key in fields:
        _adopt_value(state.dict.get(key), transaction)


def _adopt_value(value: object, transaction: SessionTransaction) -> None:
    """Make ``transaction`` answer for a fresh upload nobody answers for yet."""
    if not isinstance(value, UploadedFile):
        return
    record = value.lifecycle
    if record is not None and record.state is UploadState.PENDING and record.ledger is None:
        _ledger(transaction).adopt(record)


def _on_after_commit(session: Session) -> None:
    transaction = _current_boundary(session)  # the one committing (its children are closed)
    if transaction is not None:
        ledger = _ledgers.get(transaction)
        if ledger is not None:
            ledger.committed = True


def _on_after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    with lock:
        ledger = _ledgers.pop(transaction, None)
    if ledger is not None:
        if ledger.committed and transaction.nested:
            assert transaction.parent is not None
            _ledger(_boundary_of(transaction.parent)).absorb(ledger)
        elif ledger.committed:
            _finish_commit(ledger, session)
        else:
            _finish_rollback(ledger)
    if transaction.parent is None:
        remove_abandoned()


def _finish_rollback(ledger: Ledger) -> None:
    with lock:
        records = [r for r in ledger.uploads if r.ledger is ledger]
        ledger.uploads = []
        for record in records:
            record.state = UploadState.DISCARDED
            record.ledger = None
    for record in records:
        record.discard()


def _finish_commit(ledger: Ledger, session: Session) -> None:
    with lock:
        records = [r for r in ledger.uploads if r.ledger is ledger]
        ledger.uploads = []
        unsaved = []
        for record in records:
            if record.flushed:
                record.mark_saved()
            else:  # uploaded for an object that left the session before any flush wrote it
                record.state = UploadState.DISCARDED
                record.ledger = None
                unsaved.append(record)
    for record in unsaved:
        record.discard()
    if not ledger.removals:
        return
    if any(conn.in_transaction() for conn in ledger.connections if not conn.closed):
        # The session joined a transaction it does not own (Session(bind=connection), the
        # test-suite pattern): its "commit" is not final. Whatever happens to the outer
        # transaction, the journal rows share its fate and the collector finishes them.
        _log.debug(
            "outer transaction still open: %d removals left to the collector", len(ledger.removals)
        )
        return
    _remove_after_commit(ledger.removals, session)


def _remove_after_commit(removals: Sequence[Removal], session: Session) -> None:
    kept: set[str] = set()
    if settings.check_references:
        try:
            kept = still_referenced(session, [r.path for r in removals])
        except sa.exc.SQLAlchemyError as exc:  # the commit succeeded: do not hide that
            _log.warning(
                "sa_depot could not check whether committed rows still reference the files a "
                "commit unreferenced (%s), so it removes none of them; the collector will "
                "(its journal pass, or its sweep if the journal is off): %s",
                exc,
                ", ".join(r.path for r in removals),
            )
            return
    if kept:
        _log.debug("kept files that committed rows still reference: %s", ", ".join(kept))
    by_engine: dict[tuple[sa.Engine, bool], list[str]] = {}
    for removal in removals:
        by_engine.setdefault((removal.engine, removal.journaled), []).append(removal.path)
    for (engine, journaled), paths in by_engine.items():
        failures = remove_paths([p for p in paths if p not in kept])
        if not journaled:
            continue
        failed = {path for path, _ in failures}
        try:
            journal.complete_removals(engine, [p for p in paths if p not in failed])
            journal.record_failures(engine, failures)
        except sa.exc.SQLAlchemyError as exc:  # the commit succeeded: do not hide that
            _log.warning(
                "sa_depot could not update its removal journal after a commit (%s); the "
                "collector will finish these removals: %s",
                exc,
                ", ".join(paths),
            )


def still_referenced(session: Session, paths: Sequence[str]) -> set[str]:
    """Those of ``paths`` that a committed row of an ``UploadedFileField`` column of any mapper
    the lifecycle equipped references, read in a transaction of its own on the engine each
    mapper is bound to in ``session`` (one query per column: see
    :func:`~sa_depot.fields.references.referenced_paths`)."""
    if not paths:
        return set()
    with lock:
        equipped = list(_mapper_fields.items())
    columns: dict[sa.Engine, list[sa.Column[Any]]] = {}
    for mapper, fields in equipped:
        try:
            bind = session.get_bind(mapper=mapper)
        except sa.exc.UnboundExecutionError:
            continue  # this session cannot reach the mapper's table
        engine = bind.engine if isinstance(bind, sa.Connection) else bind
        for key in fields:
            column = mapper.get_property(key).columns[0]
            if isinstance(column, sa.Column):
                columns.setdefault(engine, []).append(column)
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


# == attribute events ==========================================================================
def _make_set_listener(field_type: UploadedFileField) -> Callable[..., Any]:
    def on_set(target: object, value: Any, oldvalue: Any, initiator: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, UploadedFile):
            uploaded = value
            record = uploaded.lifecycle
            if record is not None and record.state is UploadState.DISCARDED:
                raise FileDiscarded(record.path)
        elif isinstance(value, dict):
            uploaded = field_type.upload_type(value)
        else:
            uploaded = field_type.upload(value)
        session = instance_state(target).session
        if session is not None:
            transaction = _current_boundary(session)
            if transaction is not None:
                _adopt_value(uploaded, transaction)
        return uploaded

    return on_set


# == mapper (flush) events =====================================================================
def _make_flush_listeners(
    fields: dict[str, UploadedFileField],
) -> dict[str, Callable[..., None]]:
    def before_insert(mapper: Mapper[Any], connection: sa.Connection, target: object) -> None:
        state = instance_state(target)
        transaction = _flush_boundary(state)
        _ledger(transaction).connections.add(connection)
        for key, field_type in fields.items():
            new = state.dict.get(key)
            if new is not None:
                _settle(new, None, state, key, field_type, transaction)

    def before_update(mapper: Mapper[Any], connection: sa.Connection, target: object) -> None:
        state = instance_state(target)
        transaction: SessionTransaction | None = None
        for key, field_type in fields.items():
            history = state.attrs[key].history
            if not history.has_changes():
                continue
            if transaction is None:
                transaction = _flush_boundary(state)
                _ledger(transaction).connections.add(connection)
            new = history.added[0] if history.added else None
            # What the row holds now, not what this session loaded: another transaction may
            # have replaced it since, and that file is the one this update unreferences.
            old = _select_current(mapper, connection, state, key)
            if new is not None:
                new = _settle(new, old, state, key, field_type, transaction)
            if isinstance(old, UploadedFile) and (new is None or new.path != old.path):
                _schedule_removals(transaction, connection, old.files)

    def before_delete(mapper: Mapper[Any], connection: sa.Connection, target: object) -> None:
        state = instance_state(target)
        transaction = _flush_boundary(state)
        for key in fields:
            old = _select_current(mapper, connection, state, key)  # as in before_update
            if isinstance(old, UploadedFile):
                _schedule_removals(transaction, connection, old.files)

    return {
        "before_insert": before_insert,
        "before_update": before_update,
        "before_delete": before_delete,
    }


def _flush_boundary(state: InstanceState[Any]) -> SessionTransaction:
    session = state.session
    transaction = _current_boundary(session) if session is not None else None
    if transaction is None:  # pragma: no cover - a flush always runs in a transaction
        raise RuntimeError("sa_depot: a flush event fired outside of a session transaction")
    return transaction


def _settle(
    new: Any,
    old: Any,
    state: InstanceState[Any],
    key: str,
    field_type: UploadedFileField,
    transaction: SessionTransaction,
) -> UploadedFile:
    """Make sure the value about to be written belongs to this row alone; return it."""
    if not isinstance(new, UploadedFile):
        raise UnsupportedContent(
            f"{state.class_.__name__}.{key} holds a {type(new).__name__}, not an UploadedFile"
        )
    record = new.lifecycle
    if record is not None and record.state is UploadState.DISCARDED:
        raise FileDiscarded(record.path)
    if isinstance(old, UploadedFile) and old.path == new.path:
        return new  # the row keeps the file it has
    with lock:
        mine = (
            record is not None
            and record.state is UploadState.PENDING
            and (record.claim is None or record.claimed_by(state, key))
            and not _scheduled_for_removal(transaction, record.paths)
        )
        if mine:
            assert record is not None
            record.claim = (weakref.ref(state), key)
            record.flushed = True
            _ledger(transaction).adopt(record)
            return new
    # Another row holds this file (or will, or is losing it in this transaction): this row
    # gets a copy of its own.
    copy = field_type.copy_of(new)
    setattr(state.obj(), key, copy)  # the set listener attaches the copy to the transaction
    copy_record = copy.lifecycle
    assert copy_record is not None
    with lock:
        copy_record.claim = (weakref.ref(state), key)
        copy_record.flushed = True
        _ledger(transaction).adopt(copy_record)
    return copy


def _select_current(
    mapper: Mapper[Any], connection: sa.Connection, state: InstanceState[Any], key: str
) -> Any:
    """The value the row holds in the database now (inside the flush's transaction), the row
    locked until the transaction ends, so that no other transaction changes it in between."""
    if state.key is None:
        return None
    column = mapper.get_property(key).columns[0]
    criteria = [pk == value for pk, value in zip(mapper.primary_key, state.key[1], strict=True)]
    stmt = (
        sa.select(column).select_from(mapper.persist_selectable).where(*criteria).with_for_update()
    )
    return connection.execute(stmt).scalar()


# == ORM-enabled update() / delete() / insert() ================================================
def _on_do_orm_execute(orm_state: ORMExecuteState) -> Any:
    if not (orm_state.is_update or orm_state.is_delete or orm_state.is_insert):
        return None
    mapper = orm_state.bind_mapper
    if mapper is None:
        return None
    if not mapper.configured:  # a statement may be the first use of the mapper
        configure_mappers()
    fields = _mapper_fields.get(mapper)
    if not fields:
        return None
    if orm_state.is_delete:
        return _bulk_delete(orm_state, mapper, list(fields))
    return _bulk_write(orm_state, mapper, fields)


def _bulk_delete(orm_state: ORMExecuteState, mapper: Mapper[Any], keys: list[str]) -> Any:
    old_rows, locked, _ = _select_affected(orm_state, mapper, keys)
    result = _invoke_on(orm_state, mapper, locked)
    paths = [
        p
        for row in old_rows
        for value in row
        if isinstance(value, UploadedFile)
        for p in value.files
    ]
    if paths:
        _schedule_bulk_removals(orm_state, paths)
    return result


def _bulk_write(
    orm_state: ORMExecuteState, mapper: Mapper[Any], fields: dict[str, UploadedFileField]
) -> Any:
    rows = [row for row in _written_rows(orm_state, mapper, fields) if row]
    if not rows:
        return None
    keys = sorted({key for row in rows for key in row})
    new_values: list[UploadedFile] = []
    for row in rows:
        for value in row.values():
            if value is None:
                continue
            if not isinstance(value, UploadedFile):
                raise UnsupportedContent(
                    f"ORM-enabled insert()/update() of {mapper.class_.__name__} can only write "
                    f"UploadedFile values or None to {', '.join(keys)}, not "
                    f"{type(value).__name__}: wrap the content in UploadedFile(content)"
                )
            record = value.lifecycle
            if record is not None and record.state is UploadState.DISCARDED:
                raise FileDiscarded(record.path)
            if any(value.path == other.path for other in new_values):
                raise UnsupportedContent(
                    f"this statement writes the file {value.path} into several rows of "
                    f"{mapper.class_.__name__}; a file belongs to one row"
                )
            new_values.append(value)
    old_rows: list[Sequence[Any]] = []
    locked: list[tuple[Any, ...]] | None = None
    unwritten: set[int] = set()  # id() of the new values no row will hold
    if orm_state.is_update:
        old_rows, locked, matches = _select_affected(orm_state, mapper, keys)
        unwritten = _unwritten_values(orm_state, mapper, fields, matches)
        one_set_for_all = not isinstance(orm_state.parameters, list)
        if one_set_for_all and new_values and len(old_rows) > 1:
            raise UnsupportedContent(
                f"this update() would write one stored file into {len(old_rows)} rows of "
                f"{mapper.class_.__name__}; a file belongs to one row: update the rows one by "
                "one, or by primary key"
            )
    # The transaction answers for the new files before the statement writes them (writing
    # hands unclaimed uploads over to the database); they count as saved once it succeeds.
    orm_state.session.connection(bind_arguments=dict(orm_state.bind_arguments))  # autobegin
    transaction = _current_boundary(orm_state.session)
    assert transaction is not None
    written = [(v.lifecycle, id(v) not in unwritten) for v in new_values]
    with lock:
        records = [(r, w) for r, w in written if r is not None and r.state is UploadState.PENDING]
        for record, _ in records:
            _ledger(transaction).adopt(record)
    try:
        result = _invoke_on(orm_state, mapper, locked)
    except StaleDataError:
        # An update by primary key that matched fewer rows than parameter sets: SQLAlchemy
        # raises after every set ran, so the rows that matched hold their new files now (and
        # keep them if the caller commits anyway).
        _statement_written(orm_state, records, new_values, old_rows)
        raise
    _statement_written(orm_state, records, new_values, old_rows)
    return result


def _statement_written(
    orm_state: ORMExecuteState,
    records: list[tuple[UploadRecord, bool]],
    new_values: list[UploadedFile],
    old_rows: list[Sequence[Any]],
) -> None:
    """Count the uploads the statement wrote as saved (one that matched no row stays
    unflushed, so that the transaction's end discards it) and schedule the removal of the
    files it replaced."""
    with lock:
        for record, was_written in records:
            if was_written:
                record.flushed = True
                record.claim = SOME_ROW
    kept = {value.path for value in new_values}
    paths = [
        path
        for row in old_rows
        for value in row
        if isinstance(value, UploadedFile) and value.path not in kept
        for path in value.files
    ]
    if paths:
        _schedule_bulk_removals(orm_state, paths)


def _written_rows(
    orm_state: ORMExecuteState, mapper: Mapper[Any], fields: dict[str, UploadedFileField]
) -> list[dict[str, Any]]:
    """For each row (or set of rows) the statement writes: UploadedFileField key -> value."""
    columns = [mapper.get_property(key).columns[0] for key in fields]
    statement: Any = orm_state.statement
    sources: list[Any] = []
    if getattr(statement, "_values", None):  # .values(...): SQLAlchemy has no public accessor
        sources.append(statement._values)
    for group in getattr(statement, "_multi_values", None) or ():  # .values([{...}, ...])
        sources.extend(group)
    params: Any = orm_state.parameters
    sources.extend(params if isinstance(params, list) else [params] if params else [])
    return [_field_values(source, columns, fields) for source in sources]


def _field_values(
    source: Any, columns: list[Any], fields: dict[str, UploadedFileField]
) -> dict[str, Any]:
    """UploadedFileField key -> value, of one ``.values()`` mapping or parameter set."""
    row: dict[str, Any] = {}
    for name, value in source.items() if hasattr(source, "items") else ():
        key = _field_key(name, columns, fields)
        if key is not None:
            row[key] = value.value if isinstance(value, BindParameter) else value
    return row


def _unwritten_values(
    orm_state: ORMExecuteState,
    mapper: Mapper[Any],
    fields: dict[str, UploadedFileField],
    matches: list[int],
) -> set[int]:
    """``id()`` of the UploadedFile values of an update() that no row will hold: those of a
    parameter set whose primary key matched no row, and all of them when no row matched.

    ``matches`` counts the rows :func:`_select_affected` locked, per parameter set (one
    count for a statement with a ``WHERE``). The statement then touches exactly those rows
    (:func:`_invoke_on`, or a primary key that the lock keeps in place), so the counts are
    what it writes.
    """
    columns = [mapper.get_property(key).columns[0] for key in fields]
    params: Any = orm_state.parameters
    unwritten: set[int] = set()
    if sum(matches) == 0:
        for row in _written_rows(orm_state, mapper, fields):
            unwritten.update(id(v) for v in row.values() if v is not None)
    elif isinstance(params, list):
        for parameter_set, count in zip(params, matches, strict=True):
            if count == 0:
                values = _field_values(parameter_set, columns, fields).values()
                unwritten.update(id(v) for v in values if v is not None)
    return unwritten


def _field_key(name: Any, columns: list[Any], fields: dict[str, UploadedFileField]) -> str | None:
    """The attribute key that ``name`` (an attribute name, a column or an ORM attribute)
    writes, if it is one of ``fields``."""
    if isinstance(name, str):
        return name if name in fields else None
    element = name.__clause_element__() if hasattr(name, "__clause_element__") else name
    for column, key in zip(columns, fields, strict=True):
        if isinstance(element, sa.ColumnElement) and column.shares_lineage(element):
            return key
    return None


def _select_affected(
    orm_state: ORMExecuteState, mapper: Mapper[Any], keys: list[str]
) -> tuple[list[Sequence[Any]], list[tuple[Any, ...]] | None, list[int]]:
    """The current values of ``keys`` in the rows the statement will touch, those rows locked
    until the transaction ends; for a statement with a ``WHERE`` (rather than one parameter
    set per primary key), the primary keys of the rows found; and how many rows were found
    per parameter set (one count for a ``WHERE``).

    The statement must then touch exactly those rows (:func:`_invoke_on`): under READ
    COMMITTED it would otherwise also touch a matching row committed by another transaction
    after this SELECT, whose file nobody would journal.
    """
    attrs = [mapper.attrs[key].class_attribute for key in keys]
    pk_attrs = _primary_key_attributes(mapper)
    statement: Any = orm_state.statement
    params = orm_state.parameters
    session = orm_state.session
    selects: list[Any] = []
    by_primary_key = isinstance(params, list) and bool(params)
    if by_primary_key:  # one row per parameter set, named by its primary key
        assert isinstance(params, list)
        for row in params:
            selects.append(
                sa.select(*pk_attrs, *attrs).where(
                    *[a == row[a.key] for a in pk_attrs if a.key in row]
                )
            )
        params = None
    else:
        select = sa.select(*pk_attrs, *attrs)
        if statement.whereclause is not None:
            select = select.where(statement.whereclause)
        selects.append(select)
    rows: list[tuple[Any, ...]] = []
    matches: list[int] = []
    for select in selects:
        result = session.execute(
            select.with_for_update(),
            params,
            bind_arguments=dict(orm_state.bind_arguments),
        )
        found = [tuple(r) for r in result]
        rows.extend(found)
        matches.append(len(found))
    width = len(pk_attrs)
    values: list[Sequence[Any]] = [row[width:] for row in rows]
    return values, None if by_primary_key else [row[:width] for row in rows], matches


def _primary_key_attributes(mapper: Mapper[Any]) -> list[Any]:
    return [mapper.get_property_by_column(c).class_attribute for c in mapper.primary_key]


#: Above this many bound values, the primary keys of :func:`_invoke_on` are rendered into the
#: SQL instead (PostgreSQL accepts at most 65535 parameters per statement, SQLite 32766).
MAX_BOUND_KEYS = 10_000


def _invoke_on(
    orm_state: ORMExecuteState, mapper: Mapper[Any], locked: list[tuple[Any, ...]] | None
) -> Any:
    """Run the statement, restricted to the rows whose primary keys are ``locked`` (all of
    them: ``None``)."""
    if locked is None:
        return orm_state.invoke_statement()
    pk_attrs = _primary_key_attributes(mapper)
    literal = len(locked) * len(pk_attrs) > MAX_BOUND_KEYS
    target: Any
    keys: list[Any]
    if len(pk_attrs) == 1:
        target, keys = pk_attrs[0], [row[0] for row in locked]
    else:
        target, keys = sa.tuple_(*pk_attrs), list(locked)
    values: Any = (
        sa.bindparam("sa_depot_locked_keys", keys, expanding=True, literal_execute=True)
        if literal
        else keys
    )
    statement: Any = orm_state.statement
    return orm_state.invoke_statement(statement=statement.where(target.in_(values)))


def _schedule_bulk_removals(orm_state: ORMExecuteState, paths: list[str]) -> None:
    session = orm_state.session
    transaction = _current_boundary(session)
    assert transaction is not None
    connection = session.connection(bind_arguments=dict(orm_state.bind_arguments))
    _schedule_removals(transaction, connection, paths)


# == installation ==============================================================================
_mapper_fields: weakref.WeakKeyDictionary[Mapper[Any], dict[str, UploadedFileField]] = (
    weakref.WeakKeyDictionary()
)
_listeners: list[tuple[Any, str, Callable[..., Any]]] = []
_watching = False

_SESSION_EVENTS: dict[str, Callable[..., Any]] = {
    "before_attach": _on_before_attach,
    "after_commit": _on_after_commit,
    "after_transaction_end": _on_after_transaction_end,
    "do_orm_execute": _on_do_orm_execute,
}


def _listen(target: Any, identifier: str, fn: Callable[..., Any], **kw: Any) -> None:
    event.listen(target, identifier, fn, **kw)
    _listeners.append((target, identifier, fn))


def watch_mappers() -> None:
    """Install the ``mapper_configured`` listener that equips mappers using UploadedFileField,
    and the Session listeners (idempotent; ``UploadedFileField()`` calls it).

    The Session listeners do nothing for sessions that never touch an equipped mapper; they
    are installed here rather than with the first equipped mapper because a mapper may be
    configured in the middle of the first statement that uses it.
    """
    global _watching
    with lock:
        if not _watching:
            _listen(Mapper, "mapper_configured", _on_mapper_configured)
            for identifier, fn in _SESSION_EVENTS.items():
                _listen(Session, identifier, fn)
            _watching = True


def _on_mapper_configured(mapper: Mapper[Any], class_: type) -> None:
    from sa_depot.fields.sqlalchemy import UploadedFileField

    fields: dict[str, UploadedFileField] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if isinstance(column, sa.Column) and isinstance(column.type, UploadedFileField):
            fields[prop.key] = column.type
    if fields:
        install_for_mapper(mapper, fields)


def install_for_mapper(mapper: Mapper[Any], fields: dict[str, UploadedFileField]) -> None:
    """Equip ``mapper``: its UploadedFileField attributes ``fields`` join the lifecycle."""
    with lock:
        if mapper in _mapper_fields:
            return
        _mapper_fields[mapper] = dict(fields)
        for key, field_type in fields.items():
            _listen(mapper.class_manager[key], "set", _make_set_listener(field_type), retval=True)
        for identifier, fn in _make_flush_listeners(fields).items():
            _listen(mapper, identifier, fn)


def installed_mappers() -> list[Mapper[Any]]:
    """The mappers equipped so far."""
    return list(_mapper_fields)


def uninstall() -> None:
    """Remove every listener the lifecycle installed and forget its state (for tests).

    Mappers configured afterwards are equipped again as soon as an ``UploadedFileField`` is
    created; mappers configured before are not (call :func:`install_for_mapper`).
    """
    global _watching
    with lock:
        for target, identifier, fn in reversed(_listeners):
            if event.contains(target, identifier, fn):
                event.remove(target, identifier, fn)
        _listeners.clear()
        _mapper_fields.clear()
        _ledgers.clear()
        _watching = False


__all__ = [
    "Ledger",
    "Removal",
    "Settings",
    "configure",
    "install_for_mapper",
    "installed_mappers",
    "settings",
    "still_referenced",
    "uninstall",
    "watch_mappers",
]
