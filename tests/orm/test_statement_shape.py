"""No transaction pays for the size of the tables (guarantee 11): the shape of the statements.

A delete+commit and a replace+commit of one row holding a file are recorded statement by
statement (SQLAlchemy's ``before_cursor_execute`` event on the Engine, so the lifecycle's
statements after the commit are recorded too), on tables of 100 and of 5,000 rows, with a
second table holding files beside them. Every statement must:

* touch the user's table only by its primary key, and never touch the other table;
* touch sa_depot's own tables by their primary key or an indexed column;
* be as many at 5,000 rows as at 100 (the statement count does not grow with the tables).

On PostgreSQL, with 20,000 rows in every table and statistics gathered (``ANALYZE``), the plan
of every statement that reads or changes rows (``EXPLAIN``) uses an index and no sequential
scan: the planner's own choice, with its settings left as they are.

The assertions are about the shape (tables, ``WHERE`` columns) and upper bounds, not exact
counts, so that the lifecycle may send fewer statements without breaking them. Where the
dialect has ``DELETE ... RETURNING`` (PostgreSQL, SQLite, MariaDB) the bounds are one lower:
the registry deletes a row's attachments without reading them first.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.database import journal
from sa_depot.database.registry import RowRef, row_key
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from tests.orm.conftest import Depot, unique

#: Statements a delete+commit or a replace+commit of one row may send, at most, whatever the
#: size of the tables, the loading of the row by its key included: load, locked read of the
#: row's file column, the row's own statement, lock of the file's registry row, lock and
#: deletion of its attachment (one ``DELETE ... RETURNING`` where the dialect has it), deletion
#: of the file's registry row, journal row; a replace adds the new file's two registry rows.
MAX_STATEMENTS = {"delete+commit": 8, "replace+commit": 10}

#: Statements on sa_depot's own tables that one flush deleting or replacing rows may send, at
#: most, whatever the number of rows (10 per row before they were done together).
MAX_OWN_STATEMENTS = {"delete": 5, "replace": 7}

#: Filler rows get primary keys above this one, out of the way of the keys the database
#: generates for the rows the test inserts through the ORM.
FILLER_KEYS = 1_000_000

#: The kinds of statements whose shape is checked (transaction control is not).
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Statement:
    """One statement as sent to the database driver."""

    sql: str
    parameters: Any
    executemany: bool

    @property
    def kind(self) -> str:
        return self.sql.split(None, 1)[0].upper()

    @property
    def tables(self) -> set[str]:
        """The tables the statement names (``FROM``, ``JOIN``, ``INTO``, ``UPDATE``)."""
        found = re.findall(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([`\"\w.]+)", self.sql, re.I)
        return {_unquote(name) for name in found}

    @property
    def where(self) -> str | None:
        """The text of the ``WHERE`` clause, or None."""
        match = re.search(
            r"\bWHERE\b(.*?)(?:\bORDER BY\b|\bLIMIT\b|\bFOR UPDATE\b|\bFOR SHARE\b|"
            r"\bLOCK IN\b|\bRETURNING\b|$)",
            self.sql,
            re.I | re.S,
        )
        return match.group(1) if match else None

    @property
    def where_columns(self) -> set[tuple[str, str]]:
        """``(table, column)`` of every column the ``WHERE`` clause compares."""
        where = self.where or ""
        found = re.findall(
            r"([`\"\w]+)\.([`\"\w]+)\s*(?:=|\bIN\b|<|>|\bIS\b|\bLIKE\b)", where, re.I
        )
        return {(_unquote(table), _unquote(column)) for table, column in found}


def _unquote(name: str) -> str:
    return name.strip('`"')


@dataclass
class Recorder:
    """The statements an Engine sends while :meth:`recording`."""

    engine: sa.Engine
    statements: list[Statement] = field(default_factory=list)
    active: bool = False

    def __post_init__(self) -> None:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)

    def remove(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(
        self,
        conn: sa.Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if self.active:
            self.statements.append(Statement(" ".join(statement.split()), parameters, executemany))

    def record(self, action: Callable[[], None]) -> list[Statement]:
        """The data statements ``action`` sent."""
        self.statements = []
        self.active = True
        try:
            action()
        finally:
            self.active = False
        return [s for s in self.statements if s.kind in _DML]


class Base(DeclarativeBase):
    pass


@dataclass
class Tables:
    """The mapped class whose rows the test changes, and a second table holding files."""

    Document: Any
    Other: Any

    @property
    def all(self) -> list[sa.Table]:
        return [self.Document.__table__, self.Other.__table__]


@pytest.fixture(scope="module")
def _mapped() -> Iterator[Tables]:
    class Document(Base):
        __tablename__ = unique("shape_documents")
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    class Other(Base):
        __tablename__ = unique("shape_others")
        id: Mapped[int] = mapped_column(primary_key=True)
        picture: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    yield Tables(Document, Other)
    Base.registry.dispose()


@pytest.fixture
def tables(engine: sa.Engine, depot: Depot, _mapped: Tables) -> Iterator[Tables]:
    for table in _mapped.all:
        table.create(engine)
    yield _mapped
    for table in _mapped.all:
        table.drop(engine)


@pytest.fixture
def recorder(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    # Journal rows of removed files are deleted in batches, when 100 wait or the oldest has
    # waited 2 s (sa_depot.database.journal): a slow storage would let that batch fall inside
    # one measured operation and not another. Measure the operations alone.
    journal.flush_completed(engine)
    monkeypatch.setattr(journal, "DEFERRED_LIMIT", 10**9)
    monkeypatch.setattr(journal, "DEFERRED_SECONDS", float("inf"))
    recording = Recorder(engine)
    yield recording
    recording.remove()
    journal.flush_completed(engine)


# == filling the tables ========================================================================
def fill(engine: sa.Engine, table: sa.Table, column: str, rows: int) -> None:
    """Add ``rows`` rows to ``table`` whose ``column`` holds a file, with their registry rows
    as the lifecycle would have written them (files ``'default/<uuid>'``, one use each).

    Written through Core on a plain table clause, so that the field type's hooks do not run:
    the files need not exist.
    """
    plain = sa.table(table.name, sa.column("id"), sa.column(column))
    with engine.begin() as conn:  # keys far above those the database gives the test's rows
        highest = sa.func.max(table.c.id)
        start = conn.execute(sa.select(highest).where(table.c.id > FILLER_KEYS)).scalar()
    start = int(start or FILLER_KEYS)
    now = datetime.now(timezone.utc)
    for first in range(start + 1, start + rows + 1, 2000):
        ids = range(first, min(first + 2000, start + rows + 1))
        paths = {i: f"default/{uuid.uuid4()}" for i in ids}
        with engine.begin() as conn:
            conn.execute(
                plain.insert(), [{"id": i, column: _descriptor(p)} for i, p in paths.items()]
            )
            conn.execute(
                schema.files.insert(),
                [
                    {"path": p, "storage": "default", "refs": 1, "registered_at": now}
                    for p in paths.values()
                ],
            )
            conn.execute(
                schema.attachments.insert(),
                [
                    {
                        "key": RowRef(table.fullname, column, row_key([i])).attachment_key(p),
                        "path": p,
                        "table_name": table.fullname,
                        "column_name": column,
                        "row_key": row_key([i]),
                        "uses": 1,
                        "attached_at": now,
                    }
                    for i, p in paths.items()
                ],
            )


def fill_journal(engine: sa.Engine, rows: int) -> None:
    """A backlog of ``rows`` journaled removals (files nobody has), so that the planner has a
    table worth an index to plan for."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            schema.pending_removals.insert(),
            [
                {
                    "path": f"default/{uuid.uuid4()}",
                    "storage": "default",
                    "scheduled_at": now,
                    "attempts": 0,
                }
                for _ in range(rows)
            ],
        )


def _descriptor(path: str) -> str:
    file_id = path.split("/", 1)[1]
    return json.dumps(
        {
            "file_id": file_id,
            "path": path,
            "depot_name": "default",
            "filename": "filler.txt",
            "content_type": "text/plain",
            "content_length": 1,
            "uploaded_at": "2026-01-01 00:00:00",
            "_public_url": None,
            "files": [path],
        }
    )


def count_rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())


# == the operations ============================================================================
def new_document(engine: sa.Engine, tables: Tables) -> int:
    with Session(engine) as session:
        document = tables.Document(content=b"one row's file")
        session.add(document)
        session.commit()
        return int(document.id)


def delete_and_commit(engine: sa.Engine, tables: Tables, key: int) -> None:
    with Session(engine) as session:
        session.delete(session.get(tables.Document, key))
        session.commit()


def replace_and_commit(engine: sa.Engine, tables: Tables, key: int) -> None:
    with Session(engine) as session:
        session.get(tables.Document, key).content = b"its new file"
        session.commit()


OPERATIONS = {"delete+commit": delete_and_commit, "replace+commit": replace_and_commit}


def run_operations(
    engine: sa.Engine, tables: Tables, recorder: Recorder
) -> dict[str, list[Statement]]:
    """Record each operation on a fresh row (after one unrecorded run of each, which fills
    the caches a first use fills: provisioning checks, compiled statements)."""
    recorded = {}
    for name, operation in OPERATIONS.items():
        operation(engine, tables, new_document(engine, tables))
        key = new_document(engine, tables)
        recorded[name] = recorder.record(functools.partial(operation, engine, tables, key))
    return recorded


# == the shape =================================================================================
def allowed_columns(table: sa.Table) -> set[str]:
    """The columns a statement may select rows by: the primary key, or an index's first
    column (the one the database can search the index by)."""
    columns = {c.name for c in table.primary_key.columns}
    columns |= {list(index.columns)[0].name for index in table.indexes}
    return columns


def check_shape(statements: list[Statement], tables: Tables) -> None:
    document = tables.Document.__table__
    user_tables = {document.name: {c.name for c in document.primary_key.columns}}
    own_tables = {t.name: allowed_columns(t) for t in schema.metadata.sorted_tables}
    other = tables.Other.__table__.name
    for statement in statements:
        named = statement.tables
        assert other not in named, (
            f"a statement reads a table the change does not touch: {statement.sql}"
        )
        assert len(named) == 1, f"one table per statement expected: {statement.sql}"
        (table,) = named
        assert table in user_tables or table in own_tables, statement.sql
        if statement.kind == "INSERT":
            assert " SELECT " not in statement.sql.upper(), statement.sql  # inserts read nothing
            continue
        assert statement.where, f"a statement without WHERE reads the whole table: {statement.sql}"
        assert " LIKE " not in statement.sql.upper(), statement.sql
        assert " OR " not in statement.where.upper(), statement.sql
        columns = statement.where_columns
        assert columns, f"no column found in the WHERE clause of {statement.sql}"
        allowed = user_tables.get(table) or own_tables[table]
        for where_table, column in columns:
            assert where_table == table, statement.sql
            assert column in allowed, (
                f"{statement.sql}: rows of {table} selected by {column!r}, which is neither its "
                f"primary key nor indexed ({sorted(allowed)})"
            )


def test_statements_do_not_grow_with_the_tables(
    engine: sa.Engine, tables: Tables, recorder: Recorder
) -> None:
    fill(engine, tables.Document.__table__, "content", 98)
    fill(engine, tables.Other.__table__, "picture", 100)
    small = run_operations(engine, tables, recorder)
    assert count_rows(engine, tables.Document.__table__) == 100

    fill(engine, tables.Document.__table__, "content", 4_898)
    fill(engine, tables.Other.__table__, "picture", 4_900)
    large = run_operations(engine, tables, recorder)
    assert count_rows(engine, tables.Document.__table__) == 5_000

    for name in OPERATIONS:
        check_shape(small[name], tables)
        check_shape(large[name], tables)
        most = MAX_STATEMENTS[name] - (1 if engine.dialect.delete_returning else 0)
        assert 0 < len(large[name]) <= most, [s.sql for s in large[name]]
        assert len(large[name]) == len(small[name]), (
            name,
            [s.sql for s in small[name]],
            [s.sql for s in large[name]],
        )
        # the same statements, whatever the table's size
        assert [s.sql for s in large[name]] == [s.sql for s in small[name]]
        document = tables.Document.__table__.name
        kinds = {(s.kind, next(iter(s.tables))) for s in large[name]}
        wanted = ("DELETE" if name == "delete+commit" else "UPDATE", document)
        assert wanted in kinds, kinds  # the row itself was changed, by its key
        assert ("INSERT", schema.pending_removals.name) in kinds  # its old file journaled


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_shape_check_refuses_a_scan(engine: sa.Engine, tables: Tables) -> None:
    """What the pre-registry lifecycle sent (a LIKE over another table's file column), a
    lookup by an unindexed column, and a statement without WHERE all fail the check."""
    document, other = tables.Document.__table__.name, tables.Other.__table__.name
    by_key = Statement(f"DELETE FROM {document} WHERE {document}.id = ?", (1,), False)
    check_shape([by_key], tables)
    refused = [
        f"SELECT {other}.id FROM {other} WHERE {other}.picture LIKE ?",
        f"SELECT {document}.id FROM {document} WHERE {document}.content LIKE ?",
        "SELECT sa_depot_attachments.key FROM sa_depot_attachments "
        "WHERE sa_depot_attachments.table_name = ?",
        f"DELETE FROM {document}",
    ]
    for sql in refused:
        with pytest.raises(AssertionError):
            check_shape([Statement(sql, ("x",), False)], tables)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_plans_use_indexes(
    engine: sa.Engine, tables: Tables, recorder: Recorder
) -> None:
    rows = 20_000
    fill(engine, tables.Document.__table__, "content", rows)
    fill(engine, tables.Other.__table__, "picture", rows)
    fill_journal(engine, rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in [*tables.all, *schema.metadata.sorted_tables]:
            conn.execute(sa.text(f'ANALYZE "{table.name}"'))
    recorded = run_operations(engine, tables, recorder)

    explained = 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SHOW enable_seqscan")).scalar() == "on"
        cursor = conn.connection.driver_connection.cursor()
        for name, statements in recorded.items():
            for statement in statements:
                if statement.kind == "INSERT":
                    continue  # VALUES only (checked by the shape test): no rows to find
                parameters = statement.parameters
                if statement.executemany:
                    parameters = parameters[0]
                cursor.execute("EXPLAIN " + statement.sql, parameters)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert "Seq Scan" not in plan, f"{name}: {statement.sql}\n{plan}"
                assert "Index" in plan, f"{name}: {statement.sql}\n{plan}"
                explained += 1
        conn.rollback()
    # the row loaded, changed, and the registry rows locked and changed, at the least
    assert explained >= 2 * 4


# == one flush, many rows ======================================================================
def change_in_one_flush(engine: sa.Engine, tables: Tables, keys: list[int], how: str) -> None:
    """Delete, or replace the file of, the rows of ``keys``, all written by one flush."""
    Document = tables.Document
    with Session(engine) as session:
        for row in session.scalars(sa.select(Document).where(Document.id.in_(keys))).all():
            if how == "delete":
                session.delete(row)
            else:
                row.content = b"its new file"
        session.commit()


def own_statements(statements: list[Statement]) -> list[tuple[str, str, bool]]:
    """``(kind, table, executemany)`` of each statement on sa_depot's own tables (the text
    of an ``IN`` list grows with its values)."""
    own = {t.name for t in schema.metadata.sorted_tables}
    return [
        (s.kind, next(iter(s.tables)), s.executemany)
        for s in statements
        if len(s.tables) == 1 and s.tables <= own
    ]


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_one_flush_pays_the_same_registry_statements_for_2_rows_or_20(
    engine: sa.Engine, tables: Tables, recorder: Recorder, how: str
) -> None:
    """The registry work of the rows a flush deletes or replaces is done together: as many
    statements on sa_depot's tables (the same ones) for 20 rows as for 2."""
    recorded = {}
    for rows in (2, 2, 20):  # a first run fills the caches (provisioning, compiled statements)
        keys = [new_document(engine, tables) for _ in range(rows)]
        action = functools.partial(change_in_one_flush, engine, tables, keys, how)
        recorded[rows] = own_statements(recorder.record(action))
    assert recorded[2] == recorded[20], (recorded[2], recorded[20])
    assert ("INSERT", schema.pending_removals.name, True) in recorded[20]
    assert ("DELETE", schema.attachments.name, False) in recorded[20]
    most = MAX_OWN_STATEMENTS[how]
    if engine.dialect.delete_returning:  # the attachments are deleted without a read first
        assert ("SELECT", schema.attachments.name, False) not in recorded[20], recorded[20]
        most -= 1
    assert len(recorded[20]) <= most, recorded[20]
    with engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(schema.files)).scalar()
    assert left == (0 if how == "delete" else 2 + 2 + 20)
