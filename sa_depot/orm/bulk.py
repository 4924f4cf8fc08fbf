"""ORM-enabled ``update()``, ``delete()`` and ``insert()`` executed through a Session.

An ORM-enabled ``delete()``, or an ``update()`` writing a file column, first selects the
matching rows ``FOR UPDATE`` (their descriptors and primary keys), tells the file registry
which files those rows let go of and which they now hold, then runs restricted to those
primary keys, so that a row committed by another transaction in between is left alone rather
than changed without its file being released. Rows written by an ORM-enabled ``insert()`` are
registered by :mod:`sa_depot.orm.core_statements` once the ``INSERT`` has run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, ORMExecuteState, configure_mappers
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import BindParameter

from sa_depot.exceptions import FileDiscarded, UnsupportedContent
from sa_depot.fields.upload import ContentToStore, UploadedFile
from sa_depot.orm import ledgers
from sa_depot.orm.mapped import (
    FileField,
    field_name,
    file_column,
    file_fields_of,
    row_ref,
    validated_in,
)
from sa_depot.orm.records import UploadRecord, UploadState

#: Above this many bound values, the primary keys of :func:`_invoke_on` are rendered into the
#: SQL instead (PostgreSQL accepts at most 65535 parameters per statement, SQLite 32766).
MAX_BOUND_KEYS = 10_000


@dataclass
class _Affected:
    """The rows a statement will touch, locked until the transaction ends."""

    #: Primary key of each row.
    keys: list[tuple[Any, ...]]
    #: Current values of the file attributes, per row (in the order of the keys asked).
    values: list[Sequence[Any]]
    #: Index of the parameter set that selected each row (0 for a ``WHERE``).
    parameter_set: list[int]
    #: Rows found per parameter set (one count for a ``WHERE``).
    matches: list[int]
    #: Whether the statement must be restricted to ``keys`` (it has a ``WHERE``).
    restrict: bool


def on_do_orm_execute(orm_state: ORMExecuteState) -> Any:
    if not (orm_state.is_update or orm_state.is_delete or orm_state.is_insert):
        return None
    mapper = orm_state.bind_mapper
    if mapper is None:
        return None
    if not mapper.configured:  # a statement may be the first use of the mapper
        configure_mappers()
    fields = file_fields_of(mapper)
    if not fields:
        return None
    if orm_state.is_delete:
        return _bulk_delete(orm_state, mapper, list(fields))
    return _bulk_write(orm_state, mapper, fields)


def _bulk_delete(orm_state: ORMExecuteState, mapper: Mapper[Any], keys: list[str]) -> Any:
    affected = _select_affected(orm_state, mapper, keys)
    result = _invoke_on(orm_state, mapper, affected)  # a failing statement changes nothing
    _release_old(orm_state, mapper, {}, keys, affected, deleted=True)
    return result


def _bulk_write(
    orm_state: ORMExecuteState, mapper: Mapper[Any], fields: dict[str, FileField]
) -> Any:
    rows = [row for row in _written_rows(orm_state, mapper, fields) if row]
    if not rows:
        return None
    keys = sorted({key for row in rows for key in row})
    new_values: list[UploadedFile] = []
    for row in rows:
        for key, value in row.items():
            for item in _items(value):
                if not isinstance(item, UploadedFile) or isinstance(item, ContentToStore):
                    raise UnsupportedContent(
                        f"ORM-enabled insert()/update() of {mapper.class_.__name__} can only "
                        f"write UploadedFile values (lists of them to file lists) or None to "
                        f"{', '.join(keys)}, not {type(item).__name__}: wrap the content in "
                        "UploadedFile(content)"
                    )
                record = item.lifecycle
                if record is not None and record.discarded:
                    raise FileDiscarded(record.path)
                with validated_in(field_name(mapper, key)):
                    fields[key].accept(item)
                if any(item.path == other.path for other in new_values):
                    raise UnsupportedContent(
                        f"this statement writes the file {item.path} into several rows of "
                        f"{mapper.class_.__name__}; a file belongs to one row"
                    )
                new_values.append(item)
    affected: _Affected | None = None
    unwritten: set[int] = set()  # id() of the new values no row will hold
    if orm_state.is_update:
        affected = _select_affected(orm_state, mapper, keys)
        unwritten = _unwritten_values(orm_state, mapper, fields, affected.matches)
        one_set_for_all = not isinstance(orm_state.parameters, list)
        if one_set_for_all and new_values and len(affected.keys) > 1:
            raise UnsupportedContent(
                f"this update() would write one stored file into {len(affected.keys)} rows of "
                f"{mapper.class_.__name__}; a file belongs to one row: update the rows one by "
                "one, or by primary key"
            )
    # The transaction answers for the new files before the statement writes them (writing
    # hands unclaimed uploads over to the database); they count as saved once it succeeds.
    session = orm_state.session
    session.connection(bind_arguments=dict(orm_state.bind_arguments))  # autobegin
    transaction = ledgers.current_boundary(session)
    assert transaction is not None
    found = ledgers.ledger(session, transaction)
    written = [(v.lifecycle, id(v) not in unwritten) for v in new_values]
    records = [(r, w) for r, w in written if r is not None and r.state is UploadState.PENDING]
    for record, _ in records:
        record.answer_to(found)
    try:
        result = _invoke_on(orm_state, mapper, affected)
    except StaleDataError:
        # An update by primary key that matched fewer rows than parameter sets: SQLAlchemy
        # raises after every set ran, so the rows that matched hold their new files now (and
        # keep them if the caller commits anyway).
        _statement_written(orm_state, mapper, fields, keys, affected, records)
        raise
    _statement_written(orm_state, mapper, fields, keys, affected, records)
    return result


def _statement_written(
    orm_state: ORMExecuteState,
    mapper: Mapper[Any],
    fields: dict[str, FileField],
    keys: list[str],
    affected: _Affected | None,
    records: list[tuple[UploadRecord, bool]],
) -> None:
    """The statement succeeded: the registry learns which rows hold which files now (a
    failing statement, which a transaction may outlive on some databases, changes nothing)."""
    if affected is not None:
        _register_new(orm_state, mapper, fields, keys, affected)
        _release_old(orm_state, mapper, fields, keys, affected)
    _mark_written(records)


def _mark_written(records: list[tuple[UploadRecord, bool]]) -> None:
    """Count the uploads the statement wrote as saved (one that matched no row stays
    unflushed, so that the transaction's end discards it)."""
    for record, was_written in records:
        if was_written:
            record.written_by_statement()


def _register_new(
    orm_state: ORMExecuteState,
    mapper: Mapper[Any],
    fields: dict[str, FileField],
    keys: list[str],
    affected: _Affected,
) -> None:
    """Register the files an ``update()`` writes, for each row it will write them into (all
    of them first, so that a file moving from one row to another is never let go of)."""
    connection = _connection(orm_state)
    written = _values_per_row(orm_state, mapper, fields, affected)
    rows = [
        (row_ref(mapper, key, primary_key), row[key], old)
        for primary_key, old_values, row in zip(
            affected.keys, affected.values, written, strict=True
        )
        for key, old in zip(keys, old_values, strict=True)
        if key in row
    ]
    ledgers.register_rows(connection, rows)


def _release_old(
    orm_state: ORMExecuteState,
    mapper: Mapper[Any],
    fields: dict[str, FileField],
    keys: list[str],
    affected: _Affected,
    *,
    deleted: bool = False,
) -> None:
    """Tell the registry that the affected rows let go of the files they held and no longer
    hold (all of them, for ``deleted`` rows)."""
    session = orm_state.session
    transaction = ledgers.current_boundary(session)
    assert transaction is not None
    connection = _connection(orm_state)
    written = (
        [{key: None for key in keys}] * len(affected.keys)
        if deleted
        else _values_per_row(orm_state, mapper, fields, affected)
    )
    rows = [
        (row_ref(mapper, key, primary_key), old, row[key])
        for primary_key, old_values, row in zip(
            affected.keys, affected.values, written, strict=True
        )
        for key, old in zip(keys, old_values, strict=True)
        if key in row
    ]
    ledgers.release_rows(session, transaction, connection, rows)


def _values_per_row(
    orm_state: ORMExecuteState,
    mapper: Mapper[Any],
    fields: dict[str, FileField],
    affected: _Affected,
) -> list[dict[str, Any]]:
    """For each affected row, in order: file attribute key -> the value the statement writes
    into it (keys it does not write are absent)."""
    columns = [file_column(mapper, key) for key in fields]
    params: Any = orm_state.parameters
    if affected.restrict or not isinstance(params, list):  # one set of values for every row
        shared: dict[str, Any] = {}
        for row in _written_rows(orm_state, mapper, fields):
            shared.update(row)
        return [shared] * len(affected.keys)
    # one parameter set per primary key
    return [_field_values(params[index], columns, fields) for index in affected.parameter_set]


def _connection(orm_state: ORMExecuteState) -> sa.Connection:
    return orm_state.session.connection(bind_arguments=dict(orm_state.bind_arguments))


def _written_rows(
    orm_state: ORMExecuteState, mapper: Mapper[Any], fields: dict[str, FileField]
) -> list[dict[str, Any]]:
    """For each row (or set of rows) the statement writes: file attribute key -> value."""
    columns = [file_column(mapper, key) for key in fields]
    statement: Any = orm_state.statement
    sources: list[Any] = []
    if getattr(statement, "_values", None):  # .values(...): SQLAlchemy has no public accessor
        sources.append(statement._values)
    for group in getattr(statement, "_multi_values", None) or ():  # .values([{...}, ...])
        sources.extend(group)
    params: Any = orm_state.parameters
    sources.extend(params if isinstance(params, list) else [params] if params else [])
    return [_field_values(source, columns, fields) for source in sources]


def _field_values(source: Any, columns: list[Any], fields: dict[str, FileField]) -> dict[str, Any]:
    """File attribute key -> value, of one ``.values()`` mapping or parameter set."""
    row: dict[str, Any] = {}
    for name, value in source.items() if hasattr(source, "items") else ():
        key = _field_key(name, columns, fields)
        if key is not None:
            row[key] = value.value if isinstance(value, BindParameter) else value
    return row


def _unwritten_values(
    orm_state: ORMExecuteState,
    mapper: Mapper[Any],
    fields: dict[str, FileField],
    matches: list[int],
) -> set[int]:
    """``id()`` of the UploadedFiles of an update() that no row will hold: those of a
    parameter set whose primary key matched no row, and all of them when no row matched.

    ``matches`` counts the rows :func:`_select_affected` locked, per parameter set (one
    count for a statement with a ``WHERE``). The statement then touches exactly those rows
    (:func:`_invoke_on`, or a primary key that the lock keeps in place), so the counts are
    what it writes.
    """
    columns = [file_column(mapper, key) for key in fields]
    params: Any = orm_state.parameters
    unwritten: set[int] = set()
    if sum(matches) == 0:
        for row in _written_rows(orm_state, mapper, fields):
            unwritten.update(id(item) for v in row.values() for item in _items(v))
    elif isinstance(params, list):
        for parameter_set, count in zip(params, matches, strict=True):
            if count == 0:
                values = _field_values(parameter_set, columns, fields).values()
                unwritten.update(id(item) for v in values for item in _items(v))
    return unwritten


def _items(value: Any) -> list[Any]:
    """The files a written value holds: none, one, or the items of a file list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _field_key(name: Any, columns: list[Any], fields: dict[str, FileField]) -> str | None:
    """The attribute key that ``name`` (an attribute name, a column or an ORM attribute)
    writes, if it is one of ``fields``."""
    if isinstance(name, str):
        return name if name in fields else None
    element = name.__clause_element__() if hasattr(name, "__clause_element__") else name
    for column, key in zip(columns, fields, strict=True):
        if isinstance(element, sa.ColumnElement) and column.shares_lineage(element):
            return key
    return None


def _select_affected(orm_state: ORMExecuteState, mapper: Mapper[Any], keys: list[str]) -> _Affected:
    """The rows the statement will touch, with the current values of ``keys``, locked until
    the transaction ends.

    The statement must then touch exactly those rows (:func:`_invoke_on`): under READ
    COMMITTED it would otherwise also touch a matching row committed by another transaction
    after this SELECT, whose file nobody would release.
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
    width = len(pk_attrs)
    affected = _Affected([], [], [], [], restrict=not by_primary_key)
    for index, select in enumerate(selects):
        result = session.execute(
            select.with_for_update(), params, bind_arguments=dict(orm_state.bind_arguments)
        )
        found = [tuple(r) for r in result]
        affected.keys.extend(row[:width] for row in found)
        affected.values.extend(row[width:] for row in found)
        affected.parameter_set.extend([index] * len(found))
        affected.matches.append(len(found))
    return affected


def _primary_key_attributes(mapper: Mapper[Any]) -> list[Any]:
    return [mapper.get_property_by_column(c).class_attribute for c in mapper.primary_key]


def _invoke_on(orm_state: ORMExecuteState, mapper: Mapper[Any], affected: _Affected | None) -> Any:
    """Run the statement, restricted to the affected rows when it has a ``WHERE``."""
    if affected is None or not affected.restrict:
        return orm_state.invoke_statement()
    locked = affected.keys
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


__all__ = ["MAX_BOUND_KEYS", "on_do_orm_execute"]
