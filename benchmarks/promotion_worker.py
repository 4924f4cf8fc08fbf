"""Child process of the promotion benchmark.

    python -m benchmarks.promotion_worker <mode> <database url> <queue dir> <s3 options json>
        <table>

Modes:

* ``direct``: 1,000 rows of 256 KiB through the ORM into a column storing in S3 (10 rows per
  commit); reports the seconds until the last commit returned;
* ``promote``: the same rows into a column with a local queue storage and ``promote_to`` the
  S3 storage, promoted by the embedded executor; reports the seconds until the last commit
  returned and until every row was promoted;
* ``promote-after``: as ``promote``, but nothing is promoted while the commits run (as when
  a separate worker does it); then the embedded executor promotes everything;
* ``upload-then-die``: as ``promote``, printing ``READY`` once half the rows are promoted
  (the parent then kills it with SIGKILL: a worker killed mid-run);
* ``recover``: a restarted worker runs what the journal holds, then the collector removes
  the killed worker's half-written copies; reports the seconds it took;
* ``check``: compares the storages with the committed rows: *missing* files (a row references
  a file its storage lacks) and *orphans* (stored files no row references), and queued rows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from benchmarks.common import KiB, emit
from sa_depot import schema
from sa_depot.collector import collect
from sa_depot.database import promotions as journal
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import EmbeddedExecutor, is_queued, promote, run

ROWS = int(os.environ.get("BENCH_PROMOTION_ROWS", "1000"))
SIZE = 256 * KiB
BATCH = 10
WORKERS = 4


class _Idle:
    """An executor that leaves the journal to a worker started later."""

    def submit(self, engine: sa.Engine, paths: object) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass


def models(table: str, promoted: bool) -> Any:
    class Base(DeclarativeBase):
        pass

    field = (
        UploadedFileField(upload_storage="queue", promote_to="public")
        if promoted
        else UploadedFileField(upload_storage="public")
    )

    class Item(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(field)

    return Item


def insert(engine: sa.Engine, item: Any) -> float:
    payload = os.urandom(SIZE)
    start = time.perf_counter()
    for first in range(0, ROWS, BATCH):
        with Session(engine) as session, session.begin():
            session.add_all(
                item(content=UploadedFile.of(payload[:-8] + n.to_bytes(8, "big"), "f.bin"))
                for n in range(first, first + BATCH)
            )
    return time.perf_counter() - start


def queued_count(engine: sa.Engine) -> int:
    return len(journal.listing(engine))


def check(engine: sa.Engine, item: Any) -> dict[str, int]:
    referenced: set[str] = set()
    queued_rows = 0
    with Session(engine) as session:
        for uploaded in session.scalars(sa.select(item.content)):
            if uploaded is None:
                continue
            referenced.update(uploaded.files)
            queued_rows += is_queued(uploaded)
    stored = {f"{name}/{i}" for name in ("queue", "public") for i in DepotManager.get(name).list()}
    return {
        "rows_files": len(referenced),
        "missing": len(referenced - stored),
        "orphans": len(stored - referenced),
        "queued_rows": queued_rows,
        "journal": queued_count(engine),
    }


def main(mode: str, url: str, queue_dir: str, s3_options: str, table: str) -> None:
    DepotManager.configure("queue", {"depot.storage_path": queue_dir, "depot.fsync": "false"})
    options = json.loads(s3_options)
    DepotManager.configure(
        "public",
        {"depot.backend": "sa_depot.io.boto3.S3Storage"}
        | {f"depot.{k}": str(v) for k, v in options.items()},
    )
    engine = sa.create_engine(url, pool_size=WORKERS + 2)
    item = models(table, promoted=mode != "direct")
    if mode in ("direct", "promote", "promote-after", "upload-then-die"):
        schema.metadata.create_all(engine)
        item.metadata.create_all(engine)
    if mode == "direct":
        emit({"commit_seconds": insert(engine, item)})
        return
    if mode in ("promote", "upload-then-die"):
        executor = EmbeddedExecutor(run, workers=WORKERS)
        dispatch.set_executor(executor)
        start = time.perf_counter()
        committed = insert(engine, item)
        if mode == "upload-then-die":
            while queued_count(engine) > ROWS // 2:
                time.sleep(0.05)
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            time.sleep(600)
            raise SystemExit("not killed")
        executor.wait_idle()
        promoted = time.perf_counter() - start
        executor.shutdown()
        emit({"commit_seconds": committed, "promoted_seconds": promoted})
        return
    if mode == "promote-after":
        dispatch.set_executor(_Idle())
        start = time.perf_counter()
        committed = insert(engine, item)
        executor = EmbeddedExecutor(run, workers=WORKERS)
        executor.submit(engine, journal.due(engine))
        executor.wait_idle()
        promoted = time.perf_counter() - start
        executor.shutdown()
        emit({"commit_seconds": committed, "promoted_seconds": promoted})
        return
    if mode == "recover":
        start = time.perf_counter()
        for path in journal.due(engine):
            promote(engine, path)
        report = collect(
            engine, item.metadata, grace=timedelta(0), promoter=partial(promote, engine)
        )
        emit(
            {
                "recover_seconds": time.perf_counter() - start,
                "orphans_removed": len(report.orphans),
                "journal_finished": len(report.journal_finished),
                "errors": len(report.errors),
            }
        )
        return
    if mode == "check":
        emit(check(engine, item))
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
