"""The application module a real ``dramatiq`` worker imports in the Dramatiq tests: the same
models and executor as the test process, configured from environment variables (database,
storage directory, table prefix, Redis namespace and queue, all unique to one test)."""

from __future__ import annotations

import os
import time

import dramatiq
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sa_depot.fields.interfaces import DepotFileInfo, FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.promotion import set_executor
from sa_depot.promotion.dramatiq import DramatiqExecutor, redis_broker

REDIS_URL = "redis://127.0.0.1:6379/0"


class Reversed(FileFilter):
    """Stores the reversed content as a derivative; refuses content starting with poison.

    While the file ``hold`` exists in ``$PROMOTION_TEST_GATE``, it writes ``entered`` there and
    waits (a test holds a promotion in the middle, in another process)."""

    def on_save(self, uploaded_file: DepotFileInfo) -> None:
        with uploaded_file.file as stored:
            data = stored.read()
        if data.startswith(b"poison"):
            raise ValueError("a poisoned file: this processor always raises")
        gate = os.environ.get("PROMOTION_TEST_GATE")
        if gate and os.path.exists(os.path.join(gate, "hold")):
            with open(os.path.join(gate, "entered"), "w") as entered:
                entered.write(str(os.getpid()))
            deadline = time.monotonic() + 60
            while os.path.exists(os.path.join(gate, "hold")) and time.monotonic() < deadline:
                time.sleep(0.05)
        path, _ = uploaded_file.store_content(data[::-1], "reversed.bin")
        uploaded_file["reversed_path"] = path


def configure_storages(root: str) -> None:
    for name in ("queue", "public"):
        DepotManager.configure(
            name, {"depot.storage_path": f"{root}/{name}", "depot.fsync": "false"}
        )


class Base(DeclarativeBase):
    pass


class Photo(Base):
    __tablename__ = os.environ.get("PROMOTION_TEST_TABLE", "dramatiq_photos")
    id: Mapped[int] = mapped_column(primary_key=True)
    image: Mapped[UploadedFile | None] = mapped_column(
        UploadedFileField(upload_storage="queue", promote_to="public", filters=[Reversed()])
    )


def make_executor(engine: sa.Engine, namespace: str, queue: str) -> DramatiqExecutor:
    # A worker killed with SIGKILL holds its messages until its heartbeat times out; then the
    # broker's maintenance (run at every fetch here) gives them to another worker.
    broker = redis_broker(
        REDIS_URL, namespace=namespace, heartbeat_timeout=2_000, maintenance_chance=1_000_000
    )
    dramatiq.set_broker(broker)
    return DramatiqExecutor(
        broker, engine, queue_name=queue, min_backoff=100, max_backoff=400, max_attempts=3
    )


if "PROMOTION_TEST_DB" in os.environ:  # imported by the dramatiq worker process
    configure_storages(os.environ["PROMOTION_TEST_STORAGE"])
    engine = sa.create_engine(os.environ["PROMOTION_TEST_DB"])
    executor = make_executor(
        engine, os.environ["PROMOTION_TEST_NAMESPACE"], os.environ["PROMOTION_TEST_QUEUE"]
    )
    set_executor(executor)
