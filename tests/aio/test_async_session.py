"""The lifecycle's guarantees under AsyncSession, on aiosqlite and asyncpg: commit, rollback,
SAVEPOINTs, replace, delete, ORM-enabled bulk statements, an ``async with`` block left by an
exception; and no storage call on the event loop (every test checks it: see conftest)."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
import sqlalchemy as sa

from sa_depot import aio
from sa_depot.exceptions import BlockingStorageWarning, ConfigurationError
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.orm import records
from tests.aio.conftest import AsyncWorld


class Boom(Exception):
    pass


def test_stored_then_committed_files_exist_and_read_back(world: AsyncWorld) -> None:
    async def scenario() -> UploadedFile:
        content = await aio.store(
            FileIntent(b"hello", "hello.txt", "text/plain"), field=world.Document.content
        )
        async with world.session() as session, session.begin():
            session.add(world.Document(name="a", content=content))
        return content

    content = world.run(scenario())
    assert content.filename == "hello.txt"
    assert world.check_consistent() == {"a": b"hello"}
    assert ("write", world.loop_thread) not in world.storage.calls


def test_a_rollback_removes_the_uploads(world: AsyncWorld) -> None:
    async def scenario() -> None:
        async with world.session() as session:
            session.add(world.Document(name="kept", content=await aio.store(b"kept")))
            await session.commit()
            session.add(world.Document(name="lost", content=await aio.store(b"lost")))
            await session.flush()
            await session.rollback()

    world.run(scenario())
    assert world.check_consistent() == {"kept": b"kept"}


def test_an_async_with_block_left_by_an_exception_removes_the_uploads(world: AsyncWorld) -> None:
    async def begin_block() -> None:
        async with world.session() as session, session.begin():
            session.add(world.Document(name="flushed", content=await aio.store(b"one")))
            await session.flush()
            session.add(world.Document(name="pending", content=await aio.store(b"two")))
            raise Boom

    async def session_block() -> None:
        async with world.session() as session:  # closed without a commit
            session.add(world.Document(name="x", content=await aio.store(b"three")))
            await session.flush()
            raise Boom

    for block in (begin_block, session_block):
        with pytest.raises(Boom):
            world.run(block())
    assert world.check_consistent() == {}
    assert world.stored() == set()


def test_savepoints_undo_only_what_was_done_inside_them(world: AsyncWorld) -> None:
    async def scenario() -> None:
        async with world.session() as session:
            old = world.Document(name="old", content=await aio.store(b"committed"))
            session.add(old)
            await session.commit()

            session.add(world.Document(name="outer", content=await aio.store(b"outer")))
            await session.flush()
            with pytest.raises(Boom):
                async with session.begin_nested():
                    session.add(world.Document(name="inner", content=await aio.store(b"inner")))
                    old.content = await aio.store(b"replacement", field=world.Document.content)
                    await session.flush()
                    raise Boom
            async with session.begin_nested():  # a released one keeps its work
                session.add(world.Document(name="kept", content=await aio.store(b"kept")))
            await session.commit()

    world.run(scenario())
    # the savepoint's upload went, its replacement was cancelled: "old" keeps its file
    assert world.check_consistent() == {"old": b"committed", "outer": b"outer", "kept": b"kept"}


def test_replaced_and_deleted_files_are_removed_after_the_commit(world: AsyncWorld) -> None:
    async def scenario() -> tuple[set[str], set[str]]:
        async with world.session() as session:
            a = world.Document(name="a", content=await aio.store(b"a1"))
            b = world.Document(name="b", content=await aio.store(b"b"))
            session.add_all([a, b])
            await session.commit()
            before = world.stored()
            a.content = await aio.store(b"a2", field=world.Document.content)
            await session.delete(b)
            await session.flush()
            during = world.stored()  # nothing removed before the commit
            await session.commit()
            assert during >= before
            return before, during

    before, _ = world.run(scenario())
    assert len(before) == 2
    assert world.check_consistent() == {"a": b"a2"}
    assert not before & world.stored()


def test_orm_bulk_statements(world: AsyncWorld) -> None:
    Document = world.Document

    async def scenario() -> None:
        async with world.session() as session:
            for name in ("one", "two", "three", "four"):
                session.add(Document(name=name, content=await aio.store(name.encode())))
            await session.commit()
        async with world.session() as session:
            await session.execute(sa.delete(Document).where(Document.name.in_(["one", "two"])))
            await session.execute(
                sa.update(Document).where(Document.name == "three").values(content=None)
            )
            await session.commit()
        async with world.session() as session:  # rolled back: nothing removed
            await session.execute(sa.delete(Document))
            await session.rollback()

    world.run(scenario())
    assert world.check_consistent() == {"three": None, "four": b"four"}
    assert len(world.stored()) == 1


def test_one_upload_for_two_rows_gets_copied_off_the_loop(world: AsyncWorld) -> None:
    async def scenario() -> None:
        content = await aio.store(b"shared")
        async with world.session() as session, session.begin():
            session.add_all(
                [
                    world.Document(name="a", content=content),
                    world.Document(name="b", content=content),
                ]
            )

    world.run(scenario())
    assert world.check_consistent() == {"a": b"shared", "b": b"shared"}
    assert len(world.stored()) == 2  # one stored file per row


def test_removals_after_commit_run_in_worker_threads(world: AsyncWorld) -> None:
    async def scenario() -> None:
        async with world.session() as session:
            doc = world.Document(name="a", content=await aio.store(b"a"))
            session.add(doc)
            await session.commit()
            await session.delete(doc)
            await session.commit()

    world.run(scenario())
    deletes = [thread for name, thread in world.storage.calls if name == "delete"]
    assert deletes and world.loop_thread not in deletes
    assert world.stored() == set()


def test_assigning_content_on_the_loop_warns_and_still_works(world: AsyncWorld) -> None:
    async def scenario() -> None:
        async with world.session() as session, session.begin():
            doc = world.Document(name="blocking")
            doc.content = b"stored on the loop"  # the blocking path
            session.add(doc)

    with pytest.warns(BlockingStorageWarning, match=r"await sa_depot\.aio\.store") as caught:
        world.run(scenario())
    assert caught[0].filename == __file__  # the warning points at the assignment
    assert world.on_the_loop() == ["write"]  # what the warning is about
    world.storage.calls.clear()
    assert world.check_consistent() == {"blocking": b"stored on the loop"}


def test_a_cancelled_store_leaves_no_file(world: AsyncWorld) -> None:
    release = threading.Event()

    class SlowStream:
        """A stream whose first read waits until the test lets it go on."""

        def __init__(self) -> None:
            self.chunks = [b"slow ", b"content"]

        def read(self, size: int = -1) -> bytes:
            release.wait(30)
            return self.chunks.pop(0) if self.chunks else b""

    async def scenario() -> None:
        task = asyncio.create_task(aio.store(FileIntent(SlowStream(), "slow.txt", "text/plain")))
        await asyncio.sleep(0.05)
        task.cancel()
        release.set()  # the worker thread finishes the upload nobody waits for any more
        with pytest.raises(asyncio.CancelledError):
            await task

    world.run(scenario())  # asyncio.run waits for the executor's threads at the end
    records.remove_abandoned()  # what the next transaction's end would do
    assert world.stored() == set()


def test_store_follows_the_field_and_refuses_what_is_not_one(world: AsyncWorld) -> None:
    async def scenario() -> tuple[str, str]:
        by_attribute = await aio.store(b"x", field=world.Document.content)
        by_type = await aio.store(b"y", field=world.Document.__table__.c.content.type)
        for bad in (
            {"field": world.Document.name},
            {"field": world.Document.content, "storage": "x"},
        ):
            with pytest.raises(ConfigurationError):
                await aio.store(b"z", **bad)
        return by_attribute.depot_name, by_type.depot_name

    assert world.run(scenario()) == ("default", "default")
    gc.collect()
    records.remove_abandoned()
    assert world.stored() == set()  # neither was assigned: both were abandoned
