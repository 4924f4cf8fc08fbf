"""Two-stage storage: uploads queued in a private storage, promoted after the commit.

On SQLite, PostgreSQL and MariaDB, with the embedded executor: the commit stores in the queue
and journals the promotion; the promotion runs the filters, writes the public file and its
derivatives, swaps the row's descriptor only if the row still holds the queued file, keeps
the registry right and removes the queued file. Rollbacks, savepoints, replacement and
deletion during a promotion, failures and retries.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.database import promotions as journal
from sa_depot.descriptor import PROMOTION_KEY
from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.interfaces import DepotFileInfo, FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField, UploadedFileListField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import EmbeddedExecutor, Outcome, is_queued, promote, run
from sa_depot.promotion import job as promotion_job
from tests.orm.conftest import make_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


class Gate:
    """Lets a test hold a promotion inside its filters."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()


class Derivative(FileFilter):
    """Stores an upper-cased copy as a derivative (a thumbnail's stand-in), behind a gate;
    raises for content starting with b"poison"."""

    gate = Gate()

    def on_save(self, uploaded: DepotFileInfo) -> None:
        with uploaded.file as stored:
            data = stored.read()
        if data.startswith(b"poison"):
            raise RuntimeError("this file always fails")
        self.gate.entered.set()
        assert self.gate.release.wait(30)
        path, file_id = uploaded.store_content(data.upper(), "upper.txt", "text/plain")
        uploaded["upper_path"] = path


def make_models() -> tuple[type[DeclarativeBase], Any]:
    """The module's model, made per module: the suite uninstalls the lifecycle after each
    module, which strips the mappers of classes made at import time."""

    class Base(DeclarativeBase):
        pass

    class Photo(Base):
        __tablename__ = f"photos_{uuid.uuid4().hex[:8]}"
        __table_args__ = {"sqlite_autoincrement": True}
        id: Mapped[int] = mapped_column(primary_key=True)
        image: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(upload_storage="queue", promote_to="public", filters=[Derivative()])
        )

    return Base, Photo


Base: type[DeclarativeBase]
Photo: Any


@pytest.fixture(scope="module", autouse=True)
def _models() -> Iterator[None]:
    global Base, Photo
    Base, Photo = make_models()
    yield
    Base.registry.dispose()


@pytest.fixture
def storages(tmp_path: Path) -> Iterator[None]:
    for name in ("queue", "public"):
        DepotManager.configure(
            name,
            {
                "depot.backend": "sa_depot.io.local.LocalFileStorage",
                "depot.storage_path": str(tmp_path / name),
                "depot.fsync": "false",
            },
        )
    DepotManager.set_default("queue")
    yield


@pytest.fixture
def executor() -> Iterator[EmbeddedExecutor]:
    found = EmbeddedExecutor(run)
    dispatch.set_executor(found)
    promotion_job.configure(max_attempts=3, backoff=timedelta(0))
    Derivative.gate = Gate()
    yield found
    found.shutdown()
    dispatch.set_executor(None)
    promotion_job.reset()


@pytest.fixture
def db(db_url: str, storages: None, executor: EmbeddedExecutor) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    executor.wait_idle(30)
    Base.metadata.drop_all(engine)
    schema.metadata.drop_all(engine)
    engine.dispose()


def stored(name: str) -> set[str]:
    return {f"{name}/{i}" for i in DepotManager.get(name).list()}


def registered(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(schema.attachments.c.path)).scalars())


def queued_rows(engine: sa.Engine) -> list[journal.Promotion]:
    return journal.listing(engine)


def load(engine: sa.Engine, photo_id: int) -> UploadedFile:
    with Session(engine) as session:
        photo = session.get(Photo, photo_id)
        assert photo is not None and photo.image is not None
        return photo.image


def read(uploaded: UploadedFile) -> bytes:
    with uploaded.file as f:
        return f.read()


def add_photo(engine: sa.Engine, content: bytes) -> tuple[int, UploadedFile]:
    with Session(engine) as session:
        photo = Photo(image=UploadedFile.of(content, "photo.txt", "text/plain"))
        session.add(photo)
        session.commit()
        assert photo.image is not None
        return photo.id, photo.image


def test_a_committed_upload_is_queued_then_promoted_with_its_derivatives(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    Derivative.gate.release.clear()  # hold the promotion to look at the queued state
    photo_id, queued = add_photo(db, b"hello")
    assert queued.depot_name == "queue" and is_queued(queued)
    assert queued[PROMOTION_KEY] == {"state": "queued", "to": "public"}
    assert set(queued.keys()) >= {"file_id", "path", "depot_name", "files", "checksum"}
    assert "upper_path" not in queued  # the filters run at the promotion
    assert Derivative.gate.entered.wait(30)
    [row] = queued_rows(db)
    assert (row.path, row.target, row.state, row.attempts) == (queued.path, "public", "queued", 0)
    DepotManager.make_middleware()
    assert load(db, photo_id).url == f"/depot/{queued.path}"  # served from the queue
    assert read(load(db, photo_id)) == b"hello"

    Derivative.gate.release.set()
    assert executor.wait_idle(30)
    promoted = load(db, photo_id)
    assert promoted.depot_name == "public" and not is_queued(promoted)
    assert read(promoted) == b"hello" and promoted.checksum == queued.checksum
    assert promoted.filename == "photo.txt" and promoted.content_type == "text/plain"
    assert DepotManager.get_file(promoted["upper_path"]).read() == b"HELLO"
    assert stored("queue") == set()  # the queued file went
    assert stored("public") == set(promoted.files) and len(promoted.files) == 2
    assert registered(db) == set(promoted.files)
    assert queued_rows(db) == []
    assert promoted.url == f"/depot/{promoted.path}"


def test_a_rolled_back_upload_journals_nothing_and_leaves_nothing(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    with Session(db) as session:
        session.add(Photo(image=UploadedFile.of(b"gone")))
        session.flush()
        assert len(stored("queue")) == 1
        session.rollback()
    assert executor.wait_idle(30)
    assert stored("queue") == stored("public") == set()
    assert queued_rows(db) == [] and registered(db) == set()


def test_a_rolled_back_savepoint_takes_only_its_own_promotion(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    with Session(db) as session:
        kept = Photo(image=UploadedFile.of(b"kept"))
        session.add(kept)
        session.flush()
        nested = session.begin_nested()
        session.add(Photo(image=UploadedFile.of(b"inner")))
        session.flush()
        nested.rollback()
        session.commit()
        kept_id = kept.id
    assert executor.wait_idle(30)
    promoted = load(db, kept_id)
    assert read(promoted) == b"kept" and promoted.depot_name == "public"
    assert stored("queue") == set() and stored("public") == set(promoted.files)
    assert queued_rows(db) == []


def test_a_replacement_during_the_promotion_wins(db: sa.Engine, executor: EmbeddedExecutor) -> None:
    Derivative.gate.release.clear()
    photo_id, first = add_photo(db, b"first")
    assert Derivative.gate.entered.wait(30)  # the promotion is processing "first"
    with Session(db) as session:
        photo = session.get(Photo, photo_id)
        assert photo is not None
        photo.image = UploadedFile.of(b"second")
        session.commit()
    Derivative.gate.release.set()
    assert executor.wait_idle(30)
    final = load(db, photo_id)
    assert read(final) == b"second" and final.depot_name == "public"  # promoted in turn
    # the copies promoted from "first" were removed, and "first" itself with its replacement
    assert stored("public") == set(final.files)
    assert stored("queue") == set()
    assert registered(db) == set(final.files)
    assert queued_rows(db) == []


def test_a_deletion_during_the_promotion_wins(db: sa.Engine, executor: EmbeddedExecutor) -> None:
    Derivative.gate.release.clear()
    photo_id, _ = add_photo(db, b"doomed")
    assert Derivative.gate.entered.wait(30)
    with Session(db) as session:
        photo = session.get(Photo, photo_id)
        session.delete(photo)
        session.commit()
    Derivative.gate.release.set()
    assert executor.wait_idle(30)
    assert stored("queue") == stored("public") == set()
    assert registered(db) == set() and queued_rows(db) == []


def test_a_poisoned_file_stays_queued_and_fails_after_its_attempts(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    photo_id, queued = add_photo(db, b"poison pill")
    assert executor.wait_idle(30)
    [row] = queued_rows(db)
    assert row.state == "failed" and row.attempts == 3  # max_attempts of the fixture
    assert row.last_error is not None and "this file always fails" in row.last_error
    assert load(db, photo_id) == queued and read(queued) == b"poison pill"  # still served
    assert stored("queue") == {queued.path} and stored("public") == set()
    assert promote(db, queued.path) is Outcome.GAVE_UP  # not retried unless asked
    assert journal.retry_failed(db) == [queued.path]
    [row] = queued_rows(db)
    assert (row.state, row.attempts) == ("queued", 0)


def test_replacing_a_queued_file_cancels_its_promotion(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    dispatch.set_executor(_Ignoring())  # nothing runs: the promotion stays journaled
    photo_id, queued = add_photo(db, b"poison, never promoted")
    assert [p.path for p in queued_rows(db)] == [queued.path]
    with Session(db) as session:
        photo = session.get_one(Photo, photo_id)
        photo.image = UploadedFile.of(b"replacement")
        session.commit()
    [row] = queued_rows(db)  # the replacement's own promotion, not the replaced file's
    assert row.path == load(db, photo_id).path != queued.path
    assert queued.path not in stored("queue")
    assert promote(db, queued.path) is Outcome.ABSENT


def test_promotion_is_idempotent(db: sa.Engine, executor: EmbeddedExecutor) -> None:
    dispatch.set_executor(None)
    dispatch.set_executor(_Ignoring())  # nothing runs on its own: the test runs the job
    photo_id, queued = add_photo(db, b"twice")
    assert promote(db, queued.path) is Outcome.PROMOTED
    assert promote(db, queued.path) is Outcome.ABSENT
    final = load(db, photo_id)
    assert read(final) == b"twice" and stored("public") == set(final.files)
    assert stored("queue") == set()


class _Ignoring:
    def submit(self, engine: sa.Engine, paths: Any) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass


def test_the_default_executor_starts_lazily_and_shuts_down(storages: None) -> None:
    dispatch.reset()
    assert dispatch.executor() is None  # nothing declared promote_to since the reset
    UploadedFileField(upload_storage="queue", promote_to="public")
    made = dispatch.executor()
    assert isinstance(made, EmbeddedExecutor) and not made.started
    made.submit(sa.create_engine("sqlite://"), [])
    assert made.started
    dispatch.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        made.submit(sa.create_engine("sqlite://"), ["queue/x"])
    assert dispatch.executor() is not made  # a new default on the next use
    dispatch.reset()


def test_a_file_list_refuses_promote_to() -> None:
    with pytest.raises(ConfigurationError, match="single files"):
        UploadedFileListField(promote_to="public")


PROMOTION_WORKER = """
import json, resource, sys
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sa_depot import schema
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import Outcome, promote
from sa_depot.testing.streams import GeneratedStream

root, size = sys.argv[1], int(sys.argv[2])
for name in ("queue", "public"):
    DepotManager.configure(name, {"depot.storage_path": f"{root}/{name}", "depot.fsync": "false"})

class Ignoring:
    def submit(self, engine, paths): pass
    def shutdown(self, wait=True): pass

dispatch.set_executor(Ignoring())  # the promotion runs below, measured

class Base(DeclarativeBase):
    pass

class Video(Base):
    __tablename__ = "videos"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[UploadedFile | None] = mapped_column(
        UploadedFileField(upload_storage="queue", promote_to="public"))

engine = sa.create_engine(f"sqlite:///{root}/db.sqlite")
schema.metadata.create_all(engine)
Base.metadata.create_all(engine)
with Session(engine) as session:  # warm up every code path with a small file
    session.add(Video(content=UploadedFile.of(b"warm-up" * 1000)))
    session.commit()
    [warm] = [v.content.path for v in session.query(Video)]
assert promote(engine, warm) is Outcome.PROMOTED
stream = GeneratedStream(size)
with Session(engine) as session:
    video = Video(content=UploadedFile.of(stream, "big.bin"))
    session.add(video)
    session.commit()
    queued, video_id = video.content.path, video.id
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
outcome = promote(engine, queued)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with Session(engine) as session:
    promoted = session.get(Video, video_id).content
print(json.dumps({"outcome": outcome.value, "baseline": baseline, "after": after,
    "expected": stream.sha256.hexdigest(), "checksum": promoted.checksum,
    "stored": DepotManager.get("public").info(promoted.file_id).content_length,
    "storage": promoted.depot_name, "queue_left": DepotManager.get("queue").list()}))
"""


@pytest.mark.skipif(sys.platform == "darwin", reason="ru_maxrss is in bytes on macOS")
def test_promoting_256_mib_keeps_memory_bounded(tmp_path: Path) -> None:
    size = 256 * 1024 * 1024
    completed = subprocess.run(
        [sys.executable, "-c", PROMOTION_WORKER, str(tmp_path), str(size)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=280,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "promoted" and result["storage"] == "public"
    assert result["checksum"] == result["expected"] and result["stored"] == size
    assert len(result["queue_left"]) == 0  # the queued file (and the warm-up's) went
    growth = result["after"] - result["baseline"]
    assert growth < 64 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB"


def test_rows_inserted_together_are_each_promoted(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    with Session(db) as session:
        photos = [Photo(image=UploadedFile.of(f"photo {n}".encode())) for n in range(5)]
        session.add_all(photos)
        session.commit()
        ids = [p.id for p in photos]
    assert executor.wait_idle(30)
    assert queued_rows(db) == []
    for n, photo_id in enumerate(ids):
        image = load(db, photo_id)
        assert image.depot_name == "public" and read(image) == f"photo {n}".encode()
    assert stored("queue") == set()


EXIT_SCRIPT = """
import sys, threading
baseline = threading.active_count()
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
import sa_depot.promotion, sa_depot.workbench
from sa_depot import schema
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch

root = sys.argv[1]
for name in ("queue", "public"):
    DepotManager.configure(name, {"depot.storage_path": f"{root}/{name}", "depot.fsync": "false"})


class Base(DeclarativeBase):
    pass


class Photo(Base):
    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(primary_key=True)
    image: Mapped[UploadedFile | None] = mapped_column(
        UploadedFileField(upload_storage="queue", promote_to="public"))


assert threading.active_count() == baseline, "importing or declaring started threads"
assert not dispatch.executor().started  # made, not started: nothing was committed yet
engine = sa.create_engine(f"sqlite:///{root}/db.sqlite")
schema.metadata.create_all(engine)
Base.metadata.create_all(engine)
for n in range(3):
    with Session(engine) as session, session.begin():
        session.add(Photo(image=UploadedFile.of(b"x" * 100_000)))
assert dispatch.executor().started
print("exiting", flush=True)  # without waiting: the atexit handler stops the pool
"""


def test_the_embedded_executor_stops_cleanly_at_exit(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert completed.returncode == 0, completed.stderr
    assert "exiting" in completed.stdout and "Traceback" not in completed.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as conn:
        values = [
            json.loads(v) for v in conn.execute(sa.text("SELECT image FROM photos")).scalars()
        ]
        journaled = set(conn.execute(sa.select(schema.promotions.c.path)).scalars())
    engine.dispose()
    assert len(values) == 3
    held: set[str] = set()
    for value in values:  # each row is promoted, or still queued with its journal row
        if value["depot_name"] == "queue":
            assert value[PROMOTION_KEY]["state"] == "queued" and value["path"] in journaled
        else:
            assert value["depot_name"] == "public" and PROMOTION_KEY not in value
        held.update(value["files"])
    for name in ("queue", "public"):
        DepotManager.configure(name, {"depot.storage_path": str(tmp_path / name)})
    on_disk = stored("queue") | stored("public")
    assert held == on_disk  # nothing a row holds is missing, nothing else was left


@pytest.mark.parametrize("sync_engine_given", [True, False])
def test_an_async_session_commit_is_queued_then_promoted(
    storages: None, tmp_path: Path, sync_engine_given: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from sa_depot import aio

    sync_engine = sa.create_engine(f"sqlite:///{tmp_path / 'async.sqlite'}")
    found = EmbeddedExecutor(run, engine=sync_engine if sync_engine_given else None)
    dispatch.set_executor(found)

    async def scenario() -> tuple[int, UploadedFile]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.sqlite'}")
        async with engine.begin() as conn:
            await conn.run_sync(schema.metadata.create_all)
            await conn.run_sync(Base.metadata.create_all)
        content = await aio.store(b"async", field=Photo.image)  # the column's way: queued
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            session.add(photo := Photo(image=content))
        await engine.dispose()
        return photo.id, content

    try:
        photo_id, queued = asyncio.run(scenario())
        assert is_queued(queued) and queued.depot_name == "queue"
        assert found.wait_idle(30)
        if sync_engine_given:
            promoted = load(sync_engine, photo_id)
            assert promoted.depot_name == "public" and read(promoted) == b"async"
            assert DepotManager.get_file(promoted["upper_path"]).read() == b"ASYNC"
            assert stored("queue") == set()
        else:  # said, and left in the journal for a synchronous worker
            assert "need a synchronous engine" in caplog.text
            assert [p.path for p in queued_rows(sync_engine)] == [queued.path]
            assert load(sync_engine, photo_id) == queued
    finally:
        found.shutdown()
        dispatch.set_executor(None)
        sync_engine.dispose()


def test_the_journal_gives_due_promotions_and_holds_back_failed_ones(
    db: sa.Engine, executor: EmbeddedExecutor
) -> None:
    dispatch.set_executor(_Ignoring())
    _, first = add_photo(db, b"first")
    _, second = add_photo(db, b"second")
    assert set(journal.due(db)) == {first.path, second.path}
    row = journal.record_failure(
        db, first.path, RuntimeError("S3 is down"), max_attempts=3, backoff=timedelta(hours=1)
    )
    assert row is not None and (row.state, row.attempts) == ("queued", 1)
    assert row.last_error == "RuntimeError: S3 is down"
    assert journal.due(db) == [second.path]  # the first waits for its back-off
    later = row.next_attempt_at
    assert later is not None
    assert set(journal.due(db, now=later + timedelta(seconds=1))) == {first.path, second.path}
    assert journal.due(db, older_than=timedelta(hours=1)) == []  # both are fresh
