"""Child process of the event-loop stall benchmark: 8 concurrent request handlers each store a
16 MiB upload through an AsyncSession, while a probe measures how late the event loop answers.

python -m benchmarks.stall_worker <local|s3> <offloaded|blocking> <options json> <source>...
python -m benchmarks.stall_worker idle - <options json>

* ``offloaded``: the upload is stored with ``await sa_depot.aio.store(upload, field=...)``
  (a worker thread), then the row is added and committed;
* ``blocking``: the upload is assigned to the attribute in the handler (stored on the loop),
  as code written for a synchronous Session would do;
* ``idle``: no handler, the probe alone for as long as a run lasts: the machine's own noise
  (other processes taking the cores), the floor under every other figure.

The probe sleeps 1 ms at a time and records how much later than asked it wakes up: a stall is
that lateness, the time the loop could not run any task. Prints the longest stall, the 99th
percentile, the run's duration and a check of what was stored.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import sys
import time
import uuid
import warnings
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.common import emit
from sa_depot import aio, schema
from sa_depot.exceptions import BlockingStorageWarning
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager

PROBE_INTERVAL = 0.001


async def probe(stalls: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL)
        stalls.append(max(0.0, time.perf_counter() - start - PROBE_INTERVAL))


async def run(mode: str, database_url: str, sources: list[str]) -> dict[str, Any]:
    warnings.simplefilter("ignore", BlockingStorageWarning)  # the blocking path, on purpose

    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = f"stall_documents_{uuid.uuid4().hex[:8]}"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    engine = create_async_engine(database_url, pool_size=10)
    Session = async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as connection:
        await connection.run_sync(schema.metadata.create_all)
        await connection.run_sync(Base.metadata.create_all)

    async def handler(source: str, warm_up: bool = False) -> None:
        # the upload as Starlette spools it: a file on disk, with its name and type
        with open(source, "rb") as spooled:
            content = io.BytesIO(spooled.read(1024)) if warm_up else spooled
            upload = FileIntent(content, "upload.bin", "application/octet-stream")
            if mode == "offloaded":
                content = await aio.store(upload, field=Document.content)
                async with Session() as session, session.begin():
                    session.add(Document(content=content))
            else:
                async with Session() as session, session.begin():
                    session.add(Document(content=upload))

    # a server that has answered before: mappers configured, connections open, statements
    # compiled, worker threads started
    await asyncio.gather(*(handler(source, warm_up=True) for source in sources))

    stalls: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(stalls, stop))
    await asyncio.sleep(0.05)  # the probe's first samples: an idle loop
    start = time.perf_counter()
    await asyncio.gather(*(handler(source) for source in sources))
    seconds = time.perf_counter() - start
    stop.set()
    await prober

    async with Session() as session:
        rows = (await session.scalars(sa.select(Document))).all()
        stored = sum(1 for row in rows if row.content is not None)
        for row in rows:
            await session.delete(row)
        await session.commit()
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
    await engine.dispose()
    return {
        "max_stall_ms": max(stalls) * 1000,
        "p99_stall_ms": statistics.quantiles(stalls, n=100, method="inclusive")[98] * 1000,
        "samples": len(stalls),
        "seconds": seconds,
        "stored": stored,
    }


async def idle(seconds: float) -> dict[str, Any]:
    stalls: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(stalls, stop))
    await asyncio.sleep(seconds)
    stop.set()
    await prober
    return {
        "max_stall_ms": max(stalls) * 1000,
        "p99_stall_ms": statistics.quantiles(stalls, n=100, method="inclusive")[98] * 1000,
        "samples": len(stalls),
        "seconds": seconds,
    }


def main() -> None:
    kind, mode, options_json = sys.argv[1:4]
    if kind == "idle":
        emit(asyncio.run(idle(float(json.loads(options_json)["seconds"]))))
        return
    sources = sys.argv[4:]
    options: dict[str, Any] = json.loads(options_json)

    database_url = options.pop("database_url")
    if kind == "local":
        DepotManager.configure("default", {"depot.storage_path": options["storage_path"]})
    else:
        DepotManager.configure(
            "default",
            {
                "depot.backend": "sa_depot.io.boto3.S3Storage",
                **{f"depot.{k}": v for k, v in options.items()},
            },
        )
    result = asyncio.run(run(mode, database_url, sources))
    storage = DepotManager.get()
    remaining = storage.list()
    for file_id in remaining:
        storage.delete(file_id)
    result["left_in_storage"] = len(remaining)
    emit(result)


if __name__ == "__main__":
    main()
