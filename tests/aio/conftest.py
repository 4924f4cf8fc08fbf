"""Fixtures of the AsyncSession suite: an AsyncEngine on aiosqlite and on asyncpg (the run's
PostgreSQL database), the module's models (unique table names), and a local storage that
records the thread of every storage call, so that each test can check that none ran on the
event loop.

Tests are plain functions running their scenarios with ``asyncio.run``: the event loop runs in
the test's own thread, which :attr:`AsyncWorld.loop_thread` names. Engines use ``NullPool``:
each ``asyncio.run`` is a new loop, and a pooled connection belongs to the loop that opened it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from sa_depot import schema
from sa_depot.database import provision
from sa_depot.fields import lifecycle
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import IncomingContent, StoredFile
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager
from sa_depot.orm import records

T = TypeVar("T")


class RecordingLocalStorage(LocalFileStorage):
    """A local storage that records ``(operation, thread id)`` for each write, open and
    delete."""

    def __init__(self, storage_path: str, **options: Any) -> None:
        super().__init__(storage_path, **options)
        self.calls: list[tuple[str, int]] = []

    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        self.calls.append(("write", threading.get_ident()))
        super()._write(content, replace=replace)

    def _open(self, file_id: str) -> StoredFile:
        self.calls.append(("open", threading.get_ident()))
        return super()._open(file_id)

    def _delete(self, file_id: str) -> None:
        self.calls.append(("delete", threading.get_ident()))
        super()._delete(file_id)


@dataclass
class AsyncWorld:
    engine: AsyncEngine
    Document: Any
    storage: RecordingLocalStorage
    loop_thread: int = field(default_factory=threading.get_ident)

    def run(self, scenario: Coroutine[Any, Any, T]) -> T:
        """Run ``scenario`` on an event loop in this thread (the loop's thread)."""
        self.loop_thread = threading.get_ident()
        return asyncio.run(scenario)

    def session(self) -> AsyncSession:
        return AsyncSession(self.engine, expire_on_commit=False)

    def stored(self) -> set[str]:
        return {f"default/{file_id}" for file_id in self.storage.list()}

    def on_the_loop(self) -> list[str]:
        """The storage operations that ran on the event loop's thread."""
        return [name for name, thread in self.storage.calls if thread == self.loop_thread]

    async def committed(self) -> dict[str, bytes | None]:
        """name -> content of every committed document, read back (in a worker thread)."""
        async with self.session() as session:
            documents = (await session.scalars(sa.select(self.Document))).all()
        result: dict[str, bytes | None] = {}
        for doc in documents:
            result[doc.name] = None if doc.content is None else await asyncio.to_thread(read, doc)
        return result

    async def referenced(self) -> set[str]:
        async with self.session() as session:
            values = (await session.scalars(sa.select(self.Document.content))).all()
        return {path for value in values if value is not None for path in value.files}

    def check_consistent(self) -> dict[str, bytes | None]:
        """Every committed row's file exists and nothing else is stored; no storage call ran
        on the event loop. Returns the committed rows."""
        rows = self.run(self.committed())
        assert self.stored() == self.run(self.referenced())
        assert self.on_the_loop() == []
        return rows


def read(doc: Any) -> bytes:
    with doc.content.file as stored:
        data: bytes = stored.read()
    assert stored.checksum == doc.content.checksum
    return data


def make_models() -> tuple[type[DeclarativeBase], Any]:
    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = f"aio_documents_{uuid.uuid4().hex[:8]}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(50))
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    return Base, Document


def sqlite_engine(path: Path) -> AsyncEngine:
    """aiosqlite with the transaction handling SQLAlchemy documents for SAVEPOINTs."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=NullPool)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


@pytest.fixture(scope="module")
def _models() -> Iterator[tuple[type[DeclarativeBase], Any]]:
    yield make_models()
    lifecycle.uninstall()


@pytest.fixture(params=["aiosqlite", "asyncpg"])
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _models: tuple[type[DeclarativeBase], Any],
) -> Iterator[AsyncWorld]:
    Base, Document = _models
    if request.param == "aiosqlite":
        engine = sqlite_engine(tmp_path / "test.sqlite")
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        # NullPool: each scenario runs on an event loop of its own, and an asyncpg connection
        # belongs to the loop that opened it
        url = pg_url.replace("postgresql+psycopg://", "postgresql+asyncpg://")
        engine = create_async_engine(url, poolclass=NullPool)
    storage = DepotManager.configure(
        "default",
        {
            "depot.backend": "tests.aio.conftest.RecordingLocalStorage",
            "depot.storage_path": str(tmp_path / "files"),
            "depot.fsync": False,
        },
    )
    assert isinstance(storage, RecordingLocalStorage)

    async def create() -> None:
        async with engine.begin() as connection:
            await connection.run_sync(schema.metadata.create_all)
            await connection.run_sync(Base.metadata.create_all)

    async def drop() -> None:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.run_sync(schema.metadata.drop_all)
        await engine.dispose()

    world = AsyncWorld(engine, Document, storage)
    world.run(create())
    yield world
    records.remove_abandoned()
    world.run(drop())
    provision.forget()
