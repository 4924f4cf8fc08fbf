"""An ORM-enabled ``delete()``/``update()`` and a concurrent insert: the statement touches only
the rows whose files the lifecycle read and journaled (found by the soak test).

Session A runs the statement; the lifecycle selects the matching rows FOR UPDATE and journals
their files; right then, before A's statement runs, session B inserts and commits another
matching row. Under READ COMMITTED, A's statement would also touch B's row, whose file nobody
journaled: a leak. Run on PostgreSQL and MariaDB (SQLite serializes writers, so B cannot commit
in between).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.fields.upload import UploadedFile
from sa_depot.orm import bulk
from tests.orm.conftest import Depot, Models


@pytest.fixture
def read_committed(db_url: str, engine: sa.Engine) -> Iterator[Callable[[], sa.Engine]]:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serializes writers: no transaction commits inside another's")
    engines: list[sa.Engine] = []

    def make() -> sa.Engine:
        engines.append(sa.create_engine(db_url, isolation_level="READ COMMITTED"))
        return engines[-1]

    yield make
    for made in engines:
        made.dispose()


def files_and_rows(engine: sa.Engine, models: Models) -> tuple[set[str], dict[str, bytes | None]]:
    """The files the rows reference, and each row's content."""
    referenced: set[str] = set()
    rows: dict[str, bytes | None] = {}
    with Session(engine) as session:
        for doc in session.scalars(sa.select(models.Document)):
            if doc.content is None:
                rows[doc.name] = None
                continue
            referenced.update(doc.content.files)
            with doc.content.file as stored:
                rows[doc.name] = stored.read()
    return referenced, rows


STATEMENTS: dict[str, Callable[[Models], Any]] = {
    "delete": lambda m: sa.delete(m.Document).where(m.Document.name.like("a%")),
    "update_to_none": lambda m: (
        sa.update(m.Document).where(m.Document.name.like("a%")).values(content=None)
    ),
}


@pytest.mark.parametrize("statement", STATEMENTS)
def test_a_row_committed_between_the_select_and_the_statement_keeps_its_file(
    read_committed: Callable[[], sa.Engine],
    models: Models,
    depot: Depot,
    statement: str,
) -> None:
    engine_a, engine_b = read_committed(), read_committed()
    with Session(engine_a) as session:
        session.add_all([models.Document(name=n, content=n.encode()) for n in ("a1", "a2", "b")])
        session.commit()
    table = models.Document.__tablename__
    interleaved: list[str] = []

    def commit_a_matching_row_first(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if interleaved or not sql.lstrip().upper().startswith(("DELETE", "UPDATE")):
            return
        if table not in sql:
            return
        interleaved.append(sql)  # once: before A's statement, after its SELECT ... FOR UPDATE
        with Session(engine_b) as other:
            other.add(models.Document(name="a3", content=b"a3"))
            other.commit()

    sa.event.listen(engine_a, "before_cursor_execute", commit_a_matching_row_first)
    with Session(engine_a) as session:
        session.execute(STATEMENTS[statement](models))
        session.commit()
    assert interleaved, "session B never ran inside session A's statement"

    referenced, rows = files_and_rows(engine_b, models)
    assert rows["a3"] == b"a3"  # B's row: untouched, its file there
    assert depot.stored() == referenced  # nothing leaked, nothing missing
    if statement == "delete":
        assert rows == {"b": b"b", "a3": b"a3"}
    else:
        assert rows == {"a1": None, "a2": None, "b": b"b", "a3": b"a3"}


def test_many_rows_are_named_in_the_sql_rather_than_bound(
    engine: sa.Engine, models: Models, depot: Depot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_BOUND_KEYS primary keys (databases cap the parameters of a statement), the keys
    are rendered into the statement; it still touches exactly the selected rows."""
    monkeypatch.setattr(bulk, "MAX_BOUND_KEYS", 2)
    with Session(engine) as session:
        session.add_all([models.Document(name=f"a{i}", content=b"a") for i in range(5)])
        session.add(models.Document(name="b", content=b"b"))
        session.commit()
        session.execute(
            sa.update(models.Document)
            .where(models.Document.name == "a0")
            .values(content=UploadedFile(b"new a0"))
        )
        session.execute(sa.delete(models.Document).where(models.Document.name.like("a%")))
        session.commit()
    referenced, rows = files_and_rows(engine, models)
    assert rows == {"b": b"b"}
    assert depot.stored() == referenced
