"""The event loop under AsyncSession: the longest stall while 8 concurrent request handlers
each store a 16 MiB upload, through ``sa_depot.aio.store`` (storage calls in worker threads)
and through the blocking path (the upload assigned to the attribute on the loop), into a
local storage and into S3 (SeaweedFS), with PostgreSQL through asyncpg.

Each run is a child process (:mod:`benchmarks.stall_worker`); an idle loop measured the same
way gives the machine's own noise, the floor under every figure.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from benchmarks.common import REPO, WORK, Limit, MiB, Samples, SectionResult, fresh_dir, run_child

SECTION = "event loop under AsyncSession (8 uploads of 16 MiB at once)"
UPLOADS = 8
UPLOAD_SIZE = 16 * MiB
MODES = {"offloaded": "aio.store", "blocking": "assigned on the loop"}
TARGET_MS = 20.0


def sources() -> list[str]:
    folder = WORK / "stall-sources"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(UPLOADS):
        path = folder / f"upload-{index}.bin"
        if not path.exists() or path.stat().st_size != UPLOAD_SIZE:
            path.write_bytes(os.urandom(UPLOAD_SIZE))
        paths.append(str(path))
    return paths


def database_url() -> str:
    from benchmarks.bench_orm import postgresql_url

    url = postgresql_url()
    if url is None:
        raise RuntimeError("PostgreSQL is needed (the stall benchmark runs through asyncpg)")
    return url.replace("postgresql+psycopg://", "postgresql+asyncpg://")


def run(repetitions: int) -> list[SectionResult]:
    sys.path.insert(0, str(REPO))
    from tests.s3server import start_seaweed

    paths = sources()
    database = database_url()
    samples = Samples()
    server = start_seaweed(fresh_dir("stall-seaweedfs"))
    try:
        bucket = server.new_bucket()
        s3_options = {
            "database_url": database,
            "bucket": bucket,
            "prefix": "stall/",
            **server.storage_options(connect_timeout=10.0, read_timeout=60.0, max_attempts=3),
        }
        for rep in range(repetitions):
            modes = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
            for kind in ("local", "s3"):
                for mode in modes:
                    if kind == "local":
                        options: dict[str, Any] = {
                            "database_url": database,
                            "storage_path": str(fresh_dir("stall-local")),
                        }
                    else:
                        options = s3_options
                    out = run_child("stall_worker", kind, mode, json.dumps(options), *paths)
                    if out["stored"] != 2 * UPLOADS or out["left_in_storage"]:
                        raise AssertionError(f"{kind} {mode}: {out}")
                    case = f"{'local' if kind == 'local' else 'S3'}, {MODES[mode]}"
                    samples.add(case, "longest stall ms", out["max_stall_ms"])
                    samples.add(case, "p99 stall ms", out["p99_stall_ms"])
                    samples.add(case, "s", out["seconds"])
            idle = run_child("stall_worker", "idle", "-", json.dumps({"seconds": 1.0}))
            samples.add("idle loop (the machine's noise)", "longest stall ms", idle["max_stall_ms"])
            samples.add("idle loop (the machine's noise)", "p99 stall ms", idle["p99_stall_ms"])
        server.remove_bucket(bucket)
    finally:
        server.stop()
    cases = [f"{k}, {m}" for k in ("local", "S3") for m in MODES.values()]
    cases.append("idle loop (the machine's noise)")
    return [
        SectionResult(
            name=SECTION,
            samples=samples,
            limits=[
                Limit(SECTION, "no stall", f"{k}, aio.store", "longest stall ms", TARGET_MS, "ms")
                for k in ("local", "S3")
            ],
            info=[
                (case, metric, unit)
                for case in cases
                for metric, unit in (("longest stall ms", "ms"), ("p99 stall ms", "ms"), ("s", "s"))
                if not (case.startswith("idle") and metric == "s")
            ],
            notes=[
                f"{UPLOADS} request handlers run at once in one event loop, each with a "
                f"{UPLOAD_SIZE // MiB} MiB upload spooled to disk (as Starlette spools an "
                "UploadFile): aio.store = `content = await sa_depot.aio.store(upload, "
                "field=Document.content)` then add and commit; assigned on the loop = "
                "`session.add(Document(content=upload))` then commit, what code written for a "
                "synchronous Session does. Each run starts with one small upload per handler "
                "(connections, mappers, statements warmed up), not measured.",
                "A probe task sleeps 1 ms at a time; a stall is how much later than asked it "
                "wakes up, the time no task of the loop could run. Longest = the run's worst "
                "stall; the target applies to the worst repetition.",
                "Storage calls run in sa_depot's pool of worker threads, as many as the cores "
                "(2 here): on 2 cores, 8 threads hashing and writing at once stall the loop "
                "for 70 to 130 ms by themselves (GIL and CPU), 2 threads for 10 to 20 ms "
                "(measured with plain threads, no sa_depot, while designing the pool).",
                "PostgreSQL through asyncpg, local storage with fsync (the default), S3 on a "
                "SeaweedFS server on the same machine.",
            ],
        )
    ]
