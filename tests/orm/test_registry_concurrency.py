"""Concurrent sessions on rows that share a stored file: neither loses it nor leaks it.

The file registry's locking order (the user's row, then the file's registry row, by primary
key): two transactions letting go of rows that share a file take turns on the file's row; the
second waits for the first to commit, then reads the count it left. Each test makes the second
transaction wait for real (the database reports it waiting for a lock) before the first
commits, on PostgreSQL (READ COMMITTED) and MariaDB (REPEATABLE READ, its default).
SQLite serialises writers, so there is nothing to interleave there.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.database.journal import flush_completed
from sa_depot.exceptions import FileDiscarded
from sa_depot.fields import lifecycle
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager
from sa_depot.migrate import adopt_column
from tests.orm.conftest import unique


@dataclass
class Shared:
    engine: sa.Engine
    Document: Any
    storage: LocalFileStorage
    #: The path two rows, ``a`` and ``b``, share.
    path: str

    def stored(self) -> set[str]:
        return {f"default/{i}" for i in self.storage.list()}

    def journal(self) -> list[str]:
        flush_completed(self.engine)  # rows of files removed are deleted in batches
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(schema.pending_removals.c.path)))

    def row(self, session: Session, name: str) -> Any:
        return session.scalars(sa.select(self.Document).filter_by(name=name)).one()


@pytest.fixture(params=["pg_url", "mariadb_url"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shared]:
    url = request.getfixturevalue(request.param)
    storage = DepotManager.configure(
        "default", {"depot.storage_path": str(tmp_path / "files"), "depot.fsync": "false"}
    )
    assert isinstance(storage, LocalFileStorage)

    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = unique("shared_docs")
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(20))
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    engine = sa.create_engine(url)
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    file_id = storage.create(b"shared bytes", "shared.txt")
    path = f"default/{file_id}"
    text = json.dumps({"file_id": file_id, "path": path, "filename": "shared.txt"})
    with engine.begin() as conn:  # raw SQL, as filedepot or another program would write it
        for number, name in ((1, "a"), (2, "b")):
            conn.execute(
                sa.text(
                    f"INSERT INTO {Document.__tablename__} (id, name, content) "
                    "VALUES (:id, :name, :content)"
                ),
                {"id": number, "name": name, "content": text},
            )
    report = adopt_column(engine, Document.__table__, "content")
    assert report.rows_adopted == 2
    yield Shared(engine, Document, storage, path)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            conn.execute(table.delete())
    engine.dispose()
    Base.registry.dispose()
    lifecycle.uninstall()


def waiting_for_a_lock(engine: sa.Engine) -> bool:
    """Whether some transaction of the database waits for a row lock."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        else:
            query = (
                "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
            )
        return bool(conn.execute(sa.text(query)).scalar())


def interleave(
    shared: Shared,
    first: Callable[[Session], None],
    second: Callable[[Session], None],
) -> list[BaseException]:
    """``first`` flushes and holds its locks; ``second`` runs in another thread and must wait
    for them; then ``first`` commits and ``second`` finishes and commits. Returns the
    exceptions ``second`` raised."""
    errors: list[BaseException] = []
    with Session(shared.engine) as session_one:
        first(session_one)
        session_one.flush()

        def run_second() -> None:
            try:
                with Session(shared.engine) as session_two:
                    second(session_two)
                    session_two.commit()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)

        thread = threading.Thread(target=run_second)
        thread.start()
        deadline = time.monotonic() + 60
        while not waiting_for_a_lock(shared.engine):
            assert thread.is_alive(), f"the second transaction did not wait: {errors}"
            assert time.monotonic() < deadline, "the second transaction never waited"
            # MariaDB refreshes INNODB_TRX only when it was last read over 0.1 s ago
            time.sleep(0.25)
        session_one.commit()
    thread.join(timeout=120)
    assert not thread.is_alive()
    return errors


def change(shared: Shared, name: str, how: str) -> Callable[[Session], None]:
    def run(session: Session) -> None:
        doc = shared.row(session, name)
        if how == "replace":
            doc.content = f"new {name}".encode()
        elif how == "clear":
            doc.content = None
        else:
            session.delete(doc)

    return run


@pytest.mark.parametrize(
    ("first", "second"),
    [("replace", "delete"), ("delete", "replace"), ("delete", "delete"), ("replace", "clear")],
)
def test_two_rows_letting_go_of_a_shared_file_at_once(
    shared: Shared, first: str, second: str
) -> None:
    errors = interleave(shared, change(shared, "a", first), change(shared, "b", second))
    assert errors == []
    with Session(shared.engine) as session:
        held = {p for doc in session.scalars(sa.select(shared.Document)) if doc.content
                for p in doc.content.files}  # fmt: skip
    assert shared.path not in held
    assert shared.stored() == held  # the shared file went (no leak), nothing else did
    assert shared.journal() == []


def test_attaching_a_file_whose_last_row_goes_meanwhile_is_refused(shared: Shared) -> None:
    """A Core INSERT copying the shared descriptor into a third row, while the two rows
    using the file are deleted: it waits for the file's lock, then finds the file released
    and refuses (FileDiscarded) instead of writing a row that points at a file about to go."""
    with Session(shared.engine) as session:
        descriptor = dict(shared.row(session, "a").content)
    table = shared.Document.__table__

    def delete_both(session: Session) -> None:
        session.delete(shared.row(session, "a"))
        session.delete(shared.row(session, "b"))

    def copy_into_a_new_row(session: Session) -> None:
        session.execute(table.insert().values(id=3, name="c", content=descriptor))

    errors = interleave(shared, delete_both, copy_into_a_new_row)
    assert len(errors) == 1 and isinstance(errors[0], FileDiscarded), errors
    with shared.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    assert shared.path not in shared.stored()
    assert shared.journal() == []
