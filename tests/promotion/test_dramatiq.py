"""Promotions through Dramatiq: a real Redis broker (127.0.0.1:6379) and a real ``dramatiq``
worker process, on SQLite, PostgreSQL and MariaDB. Each test has its own Redis namespace,
queue and tables, and removes its Redis keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.database import promotions as journal
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


@pytest.fixture
def worker(db_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    client = redis.Redis.from_url(dramatiq_tasks.REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {dramatiq_tasks.REDIS_URL} is unreachable: {exc}")
    token = uuid.uuid4().hex[:8]
    namespace, queue = f"sa_depot_test_{token}", f"promotions_{token}"
    dramatiq_tasks.configure_storages(str(tmp_path / "files"))
    engine = sa.create_engine(db_url)
    schema.metadata.create_all(engine)
    dramatiq_tasks.Base.metadata.create_all(engine)
    executor = dramatiq_tasks.make_executor(engine, namespace, queue)
    dispatch.set_executor(executor)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMOTION_TEST_DB": db_url,
        "PROMOTION_TEST_STORAGE": str(tmp_path / "files"),
        "PROMOTION_TEST_NAMESPACE": namespace,
        "PROMOTION_TEST_QUEUE": queue,
        "PROMOTION_TEST_TABLE": Photo.__tablename__,
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dramatiq")),
            "tests.promotion.dramatiq_tasks",
            "--processes",
            "1",
            "--threads",
            "2",
            "--queues",
            queue,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield engine
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        dispatch.set_executor(None)
        dramatiq_tasks.Base.metadata.drop_all(engine)
        schema.metadata.drop_all(engine)
        engine.dispose()
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


def stored(name: str) -> set[str]:
    return {f"{name}/{i}" for i in DepotManager.get(name).list()}


def image_of(engine: sa.Engine, photo_id: int) -> object:
    with Session(engine) as session:
        photo = session.get(Photo, photo_id)
        assert photo is not None
        return photo.image


def test_a_committed_upload_is_promoted_by_a_dramatiq_worker(worker: sa.Engine) -> None:
    with Session(worker) as session:
        photo = Photo(image=b"abc" * 1000)
        session.add(photo)
        session.commit()
        photo_id, queued = photo.id, photo.image
    assert queued is not None and is_queued(queued)
    assert wait_until(lambda: journal.listing(worker) == [])
    promoted = image_of(worker, photo_id)
    assert promoted is not None and not is_queued(promoted)  # type: ignore[arg-type]
    with promoted.file as f:  # type: ignore[attr-defined]
        assert f.read() == b"abc" * 1000
    assert DepotManager.get_file(promoted["reversed_path"]).read() == b"cba" * 1000  # type: ignore[index]
    assert stored("public") == set(promoted.files) and stored("queue") == set()  # type: ignore[attr-defined]


def test_a_rolled_back_upload_sends_nothing_and_leaves_nothing(worker: sa.Engine) -> None:
    with Session(worker) as session:
        session.add(Photo(image=b"rolled back"))
        session.flush()
        session.rollback()
    with Session(worker) as session:  # a later commit is promoted: the worker is alive
        photo = Photo(image=b"kept")
        session.add(photo)
        session.commit()
    assert wait_until(lambda: journal.listing(worker) == [] and len(stored("public")) == 2)
    assert stored("queue") == set()


def test_a_poisoned_file_is_retried_with_backoff_then_stays_failed(worker: sa.Engine) -> None:
    with Session(worker) as session:
        photo = Photo(image=b"poison pill")
        session.add(photo)
        session.commit()
        photo_id, queued = photo.id, photo.image
    assert queued is not None
    assert wait_until(lambda: [p.state for p in journal.listing(worker)] == ["failed"])
    [row] = journal.listing(worker)
    assert row.attempts == 3 and row.last_error is not None
    assert "always raises" in row.last_error
    assert row.last_attempt_at is not None and row.last_attempt_at > row.queued_at
    assert image_of(worker, photo_id) == queued  # still queued, still served
    assert stored("queue") == {queued.path} and stored("public") == set()
    time.sleep(1.5)  # no further attempt: Dramatiq stopped retrying
    [again] = journal.listing(worker)
    assert again.attempts == 3
