"""Child process of the ORM benchmark: one library on one database, driven by its parent.

    python -m benchmarks.orm_worker <library> <database url> <storage directory> <table>

The parent sends commands on stdin (``insert <first row>``, ``replace <first row>``,
``delete <first row>``, ``check``, ``rollback``, ``exception``, ``bulk_delete``, ``finish``,
``quit``), one batch at a time to each library in turn, so that the libraries run in lockstep
and a burst of load on the shared machine hits them all alike. Each answer is one JSON line.

Libraries: ``sa_depot`` (fsync off, filedepot's durability), ``sa_depot-fsync``, ``filedepot``,
``sqlalchemy-file``, and ``filedepot-locked-read``: filedepot plus the one statement per changed
row that any design keeping sa_depot's stale-value guarantee needs (a ``SELECT`` of the row's
file column ``FOR UPDATE`` before its ``UPDATE`` or ``DELETE``: the file to let go of is the one
the row holds now, not the one the session loaded; tests/crash/test_stale_values.py), and
nothing else of sa_depot: the ceiling of any such design against filedepot. Each runs in its
own process because filedepot and sqlalchemy-file install global Session listeners when
imported, which would slow every other library's sessions.

Scenarios, each committed and then checked by comparing the storage's contents with the
committed rows (an *orphan* is a stored file no committed row references, a *missing* file is
one a committed row references that the storage does not have):

* insert, replace and delete of ``ROWS`` rows, ``BATCH`` rows per transaction (timed);
* rollback: rows with files added and flushed, then ``session.rollback()``;
* exception: rows with files added and flushed in a ``with Session(engine)`` block that raises;
* bulk delete: ``session.execute(delete(Model).where(...))``, an ORM-enabled bulk delete.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session

from benchmarks.common import KiB, emit

ROWS = int(os.environ.get("BENCH_ORM_ROWS", "1000"))
BATCH = 10
SCENARIO_ROWS = 100
FILE_SIZE = 1 * KiB
FILENAME = "file.bin"
CONTENT_TYPE = "application/octet-stream"


@dataclass
class Library:
    """What the worker needs of one library."""

    column_type: Any
    content: Callable[[bytes], Any]
    file_id: Callable[[Any], str]
    stored_ids: Callable[[], set[str]]
    create_extra_tables: Callable[[sa.Engine], None] = lambda engine: None


def setup_sa_depot(directory: str, fsync: bool) -> Library:
    from sa_depot.fields.sqlalchemy import UploadedFileField
    from sa_depot.io.utils import FileIntent
    from sa_depot.manager import DepotManager
    from sa_depot.schema import metadata

    storage = DepotManager.configure(
        "bench", {"depot.storage_path": directory, "depot.fsync": str(fsync).lower()}
    )
    return Library(
        column_type=UploadedFileField(),
        content=lambda data: FileIntent(data, FILENAME, CONTENT_TYPE),
        file_id=lambda value: value["file_id"],
        stored_ids=lambda: set(storage.list()),
        create_extra_tables=metadata.create_all,
    )


def setup_filedepot(directory: str) -> Library:
    from depot.fields.sqlalchemy import UploadedFileField
    from depot.io.utils import FileIntent
    from depot.manager import DepotManager

    DepotManager.configure("bench", {"depot.storage_path": directory})
    storage = DepotManager.get("bench")
    return Library(
        column_type=UploadedFileField(),
        content=lambda data: FileIntent(data, FILENAME, CONTENT_TYPE),
        file_id=lambda value: value["file_id"],
        stored_ids=lambda: set(storage.list()),
    )


def setup_sqlalchemy_file(directory: str) -> Library:
    from libcloud.storage.drivers.local import LocalStorageDriver
    from sqlalchemy_file import File, FileField
    from sqlalchemy_file.storage import StorageManager

    os.makedirs(os.path.join(directory, "bench"), exist_ok=True)
    container = LocalStorageDriver(directory).get_container("bench")
    StorageManager.add_storage("bench", container)
    return Library(
        column_type=FileField(upload_storage="bench"),
        content=lambda data: File(content=data, filename=FILENAME, content_type=CONTENT_TYPE),
        file_id=lambda value: value["file_id"],
        # the local driver keeps no metadata, so sqlalchemy-file stores it beside the file
        stored_ids=lambda: {
            obj.name for obj in container.list_objects() if not obj.name.endswith(".metadata.json")
        },
    )


def lock_current_value(model: Any) -> None:
    """Before each UPDATE or DELETE of ``model``'s rows, read the row's file column under a
    row lock (``filedepot-locked-read``)."""
    table = model.__table__

    def locked_read(mapper: Any, connection: sa.Connection, target: Any) -> None:
        query = sa.select(table.c.content).where(table.c.id == target.id).with_for_update()
        connection.execute(query).scalar()

    sa.event.listen(model, "before_update", locked_read)
    sa.event.listen(model, "before_delete", locked_read)


def make_library(name: str, directory: str) -> Library:
    if name == "sa_depot":
        return setup_sa_depot(directory, fsync=False)
    if name == "sa_depot-fsync":
        return setup_sa_depot(directory, fsync=True)
    if name in ("filedepot", "filedepot-locked-read"):
        return setup_filedepot(directory)
    if name == "sqlalchemy-file":
        return setup_sqlalchemy_file(directory)
    raise ValueError(name)


class Base(DeclarativeBase):
    pass


def make_model(table: str, library: Library) -> Any:
    return type(
        "Attachment",
        (Base,),
        {
            "__tablename__": table,
            "id": sa.Column(sa.Integer, primary_key=True),
            "name": sa.Column(sa.String(50), nullable=False),
            "content": sa.Column(library.column_type),
        },
    )


class Worker:
    """The commands the parent sends, one per line on stdin; each answers one JSON line."""

    def __init__(self, library: Library, model: Any, engine: sa.Engine) -> None:
        self.library, self.model, self.engine = library, model, engine
        self.payloads = [os.urandom(FILE_SIZE) for _ in range(ROWS)]
        self.ids: list[int] = []
        self.previous = {"orphans": 0, "missing": 0}

    def _batch(self, first: int, work: Callable[[Session, int], None]) -> dict[str, float]:
        """One transaction of BATCH rows, timed."""
        start = time.perf_counter()
        with Session(self.engine) as session:
            for index in range(first, first + BATCH):
                work(session, index)
            session.commit()
        return {"seconds": time.perf_counter() - start}

    def insert(self, first: str) -> dict[str, float]:
        def work(session: Session, index: int) -> None:
            content = self.library.content(self.payloads[index])
            session.add(self.model(name=f"row {index}", content=content))

        return self._batch(int(first), work)

    def replace(self, first: str) -> dict[str, float]:
        if not self.ids:
            with Session(self.engine) as session:
                query = sa.select(self.model.id).order_by(self.model.id)
                self.ids = list(session.scalars(query))

        def work(session: Session, index: int) -> None:
            row = session.get(self.model, self.ids[index])
            row.content = self.library.content(self.payloads[ROWS - 1 - index])

        return self._batch(int(first), work)

    def delete(self, first: str) -> dict[str, float]:
        def work(session: Session, index: int) -> None:
            session.delete(session.get(self.model, self.ids[index]))

        return self._batch(int(first), work)

    def check(self) -> dict[str, int]:
        """The orphans and missing files added since the last check."""
        with Session(self.engine) as session:
            referenced = {
                self.library.file_id(value)
                for value in session.scalars(sa.select(self.model.content))
                if value is not None
            }
        stored = self.library.stored_ids()
        counts = {"orphans": len(stored - referenced), "missing": len(referenced - stored)}
        added = {kind: count - self.previous[kind] for kind, count in counts.items()}
        self.previous = counts
        return added

    def _rows(self, name: str) -> list[Any]:
        content = self.library.content
        return [
            self.model(name=name, content=content(self.payloads[i])) for i in range(SCENARIO_ROWS)
        ]

    def rollback(self) -> dict[str, int]:
        with Session(self.engine) as session:
            session.add_all(self._rows("rolled back"))
            session.flush()
            session.rollback()
        return self.check()

    def exception(self) -> dict[str, int]:
        try:
            with Session(self.engine) as session:
                session.add_all(self._rows("failed"))
                session.flush()
                raise RuntimeError("the request failed")
        except RuntimeError:
            pass
        return self.check()

    def bulk_delete(self) -> dict[str, int]:
        """An ORM-enabled bulk delete, ``session.execute(delete(Model).where(...))``."""
        with Session(self.engine) as session:
            session.add_all(self._rows("bulk"))
            session.commit()
        self.check()
        with Session(self.engine) as session:
            session.execute(sa.delete(self.model).where(self.model.name == "bulk"))
            session.commit()
        return self.check()

    def finish(self) -> dict[str, int]:
        Base.metadata.drop_all(self.engine)
        self.engine.dispose()
        return {}


def main() -> None:
    name, url, directory, table = sys.argv[1:5]
    library = make_library(name, directory)
    model = make_model(table, library)
    if name == "filedepot-locked-read":
        lock_current_value(model)
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    library.create_extra_tables(engine)
    worker = Worker(library, model, engine)
    emit({"ready": True})
    for line in sys.stdin:
        command, *args = line.split()
        if command == "quit":
            break
        emit(getattr(worker, command)(*args))


if __name__ == "__main__":
    main()
