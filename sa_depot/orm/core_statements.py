"""Rows written through Core with the field type join the file registry.

An ``INSERT`` into a table with ``UploadedFileField`` columns (whether a flush, an ORM-enabled
``insert()`` or a plain Core statement emitted it) registers the files of each row it wrote,
once it has run, so that the primary key the database generated is known:

* a fresh upload of this process (not yet saved anywhere) is registered as new, and a Core
  statement writing one that no session answers for hands it over to the row;
* any other descriptor (loaded from another row, or a filedepot-style dict) is *attached*:
  the registry locks the file and raises :class:`~sa_depot.exceptions.FileDiscarded` if a
  committed transaction let go of it meanwhile.

A Core ``UPDATE`` (not one emitted by a flush or an ORM-enabled statement, which
:mod:`~sa_depot.orm.flush_events` and :mod:`~sa_depot.orm.bulk` handle with the rows' keys,
or by the legacy ``bulk_update_mappings``, whose fresh uploads are simply handed to the rows)
attaches the files it writes without a row key: the registry then keeps them for as long as
the table and column hold any row with that file, and the files the rows held before stay
for the collector, which no statement can see.

When the statement gives no primary key for a row (a Core ``INSERT`` of several rows whose
keys the database generated), the attachment is recorded without one
(:data:`~sa_depot.database.registry.UNKNOWN_ROW`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from sa_depot.database.registry import UNKNOWN_ROW, RowRef, row_key
from sa_depot.fields.upload import UploadedFile
from sa_depot.orm import ledgers
from sa_depot.orm.mapped import is_file_column

_INFO_KEY = "sa_depot.file_columns"


def on_after_execute(
    connection: sa.Connection,
    clauseelement: Any,
    multiparams: Any,
    params: Any,
    execution_options: Any,
    result: Any,
) -> None:
    """The Engine ``after_execute`` listener."""
    is_insert = isinstance(clauseelement, sa.Insert)
    if not (is_insert or isinstance(clauseelement, sa.Update)):
        return
    table = clauseelement.table
    if not isinstance(table, sa.Table):
        return
    columns = _file_columns(table)
    if not columns:
        return
    if not isinstance(result, CursorResult):  # pragma: no cover - DML always gives one
        return
    handled_by_the_orm = not is_insert and _from_the_orm(clauseelement, execution_options)
    to_register: list[tuple[RowRef, Any, Any]] = []
    every_written: list[UploadedFile] = []
    for values, key in _written_rows(clauseelement, result, table, is_insert):
        for column in columns:
            written = _descriptors(values.get(column.key))
            if not written:
                continue
            if not handled_by_the_orm:
                to_register.append((RowRef(table.fullname, column.name, key), written, None))
            every_written.extend(written)
    if to_register:  # every row of the statement at once: two statements for fresh uploads
        ledgers.register_rows(connection, to_register)
    # A fresh upload nobody answers for (written by Core, or by the legacy
    # bulk_update_mappings, whose flush registered the rows) now belongs to its row.
    for uploaded in every_written:
        if uploaded.lifecycle is not None:
            uploaded.lifecycle.hand_over()


def _descriptors(value: Any) -> list[UploadedFile]:
    """The descriptors of a written value (an UploadedFile, a dict, or a list of them)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [
        item if isinstance(item, UploadedFile) else UploadedFile(item)
        for item in items
        if isinstance(item, dict)
    ]


def _from_the_orm(clauseelement: Any, execution_options: Any) -> bool:
    """Whether a flush or an ORM-enabled statement emitted this statement (they handle the
    registry themselves, knowing each row's key)."""
    if clauseelement._propagate_attrs.get("compile_state_plugin") == "orm":
        return True
    # The unit of work runs its statements with the mapper's statement cache.
    return "compiled_cache" in (execution_options or {})


def _file_columns(table: sa.Table) -> list[sa.Column[Any]]:
    cached: list[sa.Column[Any]] | None = table.info.get(_INFO_KEY)
    if cached is None:
        cached = table.info[_INFO_KEY] = [c for c in table.columns if is_file_column(c)]
    return cached


def _written_rows(
    statement: Any, result: CursorResult[Any], table: sa.Table, is_insert: bool
) -> list[tuple[dict[str, Any], str]]:
    """``(column key -> value, row key)`` of each row the statement wrote."""
    primary_key = list(table.primary_key.columns)
    multi = getattr(statement, "_multi_values", None)  # .values([{...}, ...]): no accessor
    if multi:
        rows = [
            {(k if isinstance(k, str) else k.key): _unbound(v) for k, v in row.items()}
            for group in multi
            for row in group
        ]
        return [(row, _key_in(row, primary_key)) for row in rows]
    parameters: Sequence[Mapping[str, Any]] = result.context.compiled_parameters or []
    generated: list[Any] = []
    if is_insert:
        try:
            generated = list(result.inserted_primary_key_rows)
        except sa.exc.InvalidRequestError:  # pragma: no cover - a dialect without the feature
            generated = []
    written: list[tuple[dict[str, Any], str]] = []
    for index, row in enumerate(parameters):
        key = _key_in(row, primary_key)
        if key == UNKNOWN_ROW and index < len(generated) and generated[index] is not None:
            values = tuple(generated[index])
            if values and all(v is not None for v in values):
                key = row_key(values)
        written.append((dict(row), key))
    return written


def _key_in(row: Mapping[str, Any], primary_key: list[sa.Column[Any]]) -> str:
    values = [row.get(column.key) for column in primary_key]
    if primary_key and all(v is not None for v in values):
        return row_key(values)
    return UNKNOWN_ROW


def _unbound(value: Any) -> Any:
    return value.value if isinstance(value, sa.BindParameter) else value


__all__ = ["on_after_execute"]
