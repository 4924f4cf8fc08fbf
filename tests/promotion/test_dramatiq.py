"""Promotions through Dramatiq: a real Redis broker (127.0.0.1:6379) and real ``dramatiq``
worker processes, on SQLite, PostgreSQL and MariaDB: commit, rollback, savepoint, replacement
and deletion during a promotion, a poisoned file, and a worker killed with SIGKILL in the
middle of a promotion. Each test has its own Redis namespace, queue and tables, and removes its
Redis keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.collector import collect
from sa_depot.database import promotions as journal
from sa_depot.fields import lifecycle
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import is_queued
from tests.promotion import dramatiq_tasks
from tests.promotion.dramatiq_tasks import Photo

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@dataclass
class Workers:
    """Real ``dramatiq`` worker processes on the test's queue."""

    env: dict[str, str]
    queue: str
    log: IO[bytes]
    gate: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        self.processes.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("dramatiq")),
                    "tests.promotion.dramatiq_tasks",
                    "--processes",
                    "1",
                    "--threads",
                    "2",
                    "--queues",
                    self.queue,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill reaches its children
            )
        )

    def kill9(self) -> None:
        process = self.processes.pop()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def hold(self) -> None:
        (self.gate / "hold").write_text("")

    def held(self) -> bool:
        return wait_until(lambda: (self.gate / "entered").exists(), timeout=60)

    def release(self) -> None:
        (self.gate / "hold").unlink(missing_ok=True)


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    # Photo was mapped when this module was imported; another module's tests may have
    # uninstalled the lifecycle since: equip it again (idempotent).
    lifecycle.watch_mappers()
    lifecycle.install_for_mapper(sa.inspect(Photo), {"image": Photo.__table__.c.image.type})
    found = sa.create_engine(db_url)
    schema.metadata.create_all(found)
    dramatiq_tasks.Base.metadata.create_all(found)
    yield found
    dramatiq_tasks.Base.metadata.drop_all(found)
    schema.metadata.drop_all(found)
    found.dispose()


@pytest.fixture
def workers(db_url: str, engine: sa.Engine, tmp_path: Path) -> Iterator[Workers]:
    client = redis.Redis.from_url(dramatiq_tasks.REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {dramatiq_tasks.REDIS_URL} is unreachable: {exc}")
    token = uuid.uuid4().hex[:8]
    namespace, queue = f"sa_depot_test_{token}", f"promotions_{token}"
    dramatiq_tasks.configure_storages(str(tmp_path / "files"))
    dispatch.set_executor(dramatiq_tasks.make_executor(engine, namespace, queue))
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMOTION_TEST_DB": db_url,
        "PROMOTION_TEST_STORAGE": str(tmp_path / "files"),
        "PROMOTION_TEST_NAMESPACE": namespace,
        "PROMOTION_TEST_QUEUE": queue,
        "PROMOTION_TEST_TABLE": Photo.__tablename__,
        "PROMOTION_TEST_GATE": str(gate),
    }
    with open(tmp_path / "worker.log", "wb") as log:
        found = Workers(env, queue, log, gate)
        found.start()
        try:
            yield found
        finally:
            found.release()
            found.stop()
            dispatch.set_executor(None)
            keys = list(client.scan_iter(f"{namespace}*"))
            if keys:
                client.delete(*keys)
            client.close()


def stored(name: str) -> set[str]:
    return {f"{name}/{i}" for i in DepotManager.get(name).list()}


def image_of(engine: sa.Engine, photo_id: int) -> UploadedFile | None:
    with Session(engine) as session:
        photo = session.get(Photo, photo_id)
        return None if photo is None else photo.image


def add_photo(engine: sa.Engine, content: bytes) -> tuple[int, UploadedFile]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(photo := Photo(image=UploadedFile.of(content)))
    assert photo.image is not None
    return photo.id, photo.image


def promoted(engine: sa.Engine, photo_id: int, content: bytes) -> UploadedFile:
    """The row's promoted file, checked: public, readable, its derivative made."""
    assert wait_until(lambda: journal.listing(engine) == [])
    image = image_of(engine, photo_id)
    assert image is not None and not is_queued(image) and image.depot_name == "public"
    with image.file as f:
        assert f.read() == content
    assert DepotManager.get_file(image["reversed_path"]).read() == content[::-1]
    return image


def consistent(engine: sa.Engine, files: set[str]) -> None:
    """After the collector, the storages hold exactly ``files``; the journals are empty."""
    report = collect(engine, dramatiq_tasks.Base.metadata, grace=timedelta(0))
    assert report.ok and report.missing == [], report.summary()
    assert stored("public") == files and stored("queue") == set()
    assert journal.listing(engine) == []


def test_a_committed_upload_is_promoted_by_a_dramatiq_worker(
    engine: sa.Engine, workers: Workers
) -> None:
    photo_id, queued = add_photo(engine, b"abc" * 1000)
    assert is_queued(queued)
    image = promoted(engine, photo_id, b"abc" * 1000)
    assert stored("public") == set(image.files) and stored("queue") == set()


def test_a_rolled_back_upload_and_savepoint_leave_nothing(
    engine: sa.Engine, workers: Workers
) -> None:
    with Session(engine) as session:
        session.add(Photo(image=b"rolled back"))
        session.flush()
        session.rollback()
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(kept := Photo(image=b"kept"))
        session.flush()
        nested = session.begin_nested()
        session.add(Photo(image=b"inner"))
        session.flush()
        nested.rollback()
    image = promoted(engine, kept.id, b"kept")
    consistent(engine, set(image.files))


@pytest.mark.parametrize("change", ["replace", "delete"])
def test_a_change_during_the_promotion_wins(
    engine: sa.Engine, workers: Workers, change: str
) -> None:
    workers.hold()
    photo_id, _ = add_photo(engine, b"first")
    assert workers.held()  # the worker is inside the filters of "first"
    with Session(engine) as session, session.begin():
        photo = session.get_one(Photo, photo_id)
        if change == "replace":
            photo.image = UploadedFile.of(b"second")
        else:
            session.delete(photo)
    workers.release()
    if change == "replace":
        image = promoted(engine, photo_id, b"second")
        # the copies promoted from "first" were removed by the promotion that lost
        assert wait_until(lambda: stored("public") == set(image.files))
        consistent(engine, set(image.files))
    else:
        assert wait_until(lambda: journal.listing(engine) == [] and stored("public") == set())
        consistent(engine, set())


def test_a_worker_killed_mid_promotion_loses_nothing_and_leaks_nothing(
    engine: sa.Engine, workers: Workers
) -> None:
    workers.hold()
    photo_id, queued = add_photo(engine, b"survivor")
    assert workers.held()  # the promoted file is in the public storage, uncommitted
    workers.kill9()
    assert image_of(engine, photo_id) == queued  # still queued, still served
    assert queued.path in stored("queue")
    workers.release()
    workers.start()  # the broker gives the killed worker's message to the new one
    image = promoted(engine, photo_id, b"survivor")
    consistent(engine, set(image.files))  # the killed attempt's copy was an orphan: removed


def test_a_poisoned_file_is_retried_with_backoff_then_stays_failed(
    engine: sa.Engine, workers: Workers
) -> None:
    photo_id, queued = add_photo(engine, b"poison pill")
    assert wait_until(lambda: [p.state for p in journal.listing(engine)] == ["failed"])
    [row] = journal.listing(engine)
    assert row.attempts == 3 and row.last_error is not None
    assert "always raises" in row.last_error
    assert row.last_attempt_at is not None and row.last_attempt_at > row.queued_at
    assert image_of(engine, photo_id) == queued  # still queued, still served
    assert stored("queue") == {queued.path} and stored("public") == set()
    time.sleep(1.5)  # no further attempt: Dramatiq stopped retrying
    [again] = journal.listing(engine)
    assert again.attempts == 3
