"""Promotion benchmark: 1,000 files of 256 KiB through the ORM, committed into a local queue
storage and promoted to S3 (SeaweedFS) by the embedded executor, against the same rows stored
in S3 directly by the request. Measures how long the commits take (what a request waits for)
and how long until every file is promoted; checks that nothing is missing and nothing is
orphaned afterwards, also after a worker killed with SIGKILL in the middle of the run.

Each case runs in a child process (:mod:`benchmarks.promotion_worker`), on PostgreSQL when it
is up (its own database), else on SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import sqlalchemy as sa

from benchmarks.common import (
    REPO,
    WORK,
    Limit,
    Samples,
    SectionResult,
    Target,
    fresh_dir,
    run_child,
)

SECTION = "promotion (1,000 files of 256 KiB, local queue -> S3 on SeaweedFS)"
PG_BENCH_DB = "sa_depot_bench_promotion"
CASES = {
    "direct": "S3 direct",
    "promote": "queue + promotion",
    "promote-after": "queue, promoted afterwards",
}


def database_url() -> str:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 user=postgres dbname=test", autocommit=True, connect_timeout=5
        ) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_BENCH_DB,)
            ).fetchone():
                conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
        return f"postgresql+psycopg://postgres@127.0.0.1/{PG_BENCH_DB}"
    except Exception as exc:  # noqa: BLE001 - report and go on with SQLite
        print(f"   PostgreSQL unavailable, SQLite instead: {exc}", file=sys.stderr)
        return f"sqlite:///{WORK / 'promotion.sqlite'}"


def reset_database(url: str) -> None:
    sys.path.insert(0, str(REPO))
    from sa_depot import schema

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in sa.inspect(conn).get_table_names():
            if table.startswith("bench_promotion_"):
                conn.execute(sa.text(f"DROP TABLE {table}"))
    schema.metadata.drop_all(engine)
    engine.dispose()


def killed_run(args: list[str]) -> None:
    """Run ``upload-then-die`` until it prints READY, then kill -9 it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.promotion_worker", "upload-then-die", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the worker to kill never reached its crash point: {line!r}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def run(repetitions: int) -> list[SectionResult]:
    sys.path.insert(0, str(REPO))
    try:
        from tests.s3server import start_seaweed
    except ImportError as exc:
        return [SectionResult(SECTION, Samples(), skipped=f"no SeaweedFS helper: {exc}")]
    url = database_url()
    samples = Samples()
    server = start_seaweed(fresh_dir("seaweedfs-promotion"))
    notes: list[str] = []
    try:
        bucket = server.new_bucket()
        options = server.storage_options(connect_timeout=10.0, read_timeout=60.0, max_attempts=3)

        def case_args(name: str) -> list[str]:
            queue = fresh_dir("promotion", name)
            s3 = {"bucket": bucket, "prefix": f"{name}/", **options}
            return [url, str(queue), json.dumps(s3), f"bench_promotion_{uuid.uuid4().hex[:8]}"]

        def checked(case: str, args: list[str]) -> dict[str, Any]:
            found = run_child("promotion_worker", "check", *args, timeout=600)
            samples.add(case, "missing+orphans", found["missing"] + found["orphans"])
            samples.add(case, "queued rows left", found["queued_rows"] + found["journal"])
            return found

        for rep in range(repetitions):
            order = ["direct", "promote", "promote-after"]
            for mode in order if rep % 2 == 0 else reversed(order):
                reset_database(url)
                args = case_args(f"{mode}-{rep}")
                out = run_child("promotion_worker", mode, *args, timeout=1800)
                case = CASES[mode]
                rows = int(os.environ.get("BENCH_PROMOTION_ROWS", "1000"))
                public = out.get("promoted_seconds", out["commit_seconds"])  # direct: at commit
                samples.add(case, "commit rows/s", rows / out["commit_seconds"])
                samples.add(case, "until commit s", out["commit_seconds"])
                samples.add(case, "until promoted s", public)
                samples.add(case, "promoted rows/s", rows / public)
                checked(case, args)

        reset_database(url)
        args = case_args("killed")
        killed_run(args)
        before = run_child("promotion_worker", "check", *args, timeout=600)
        recovered = run_child("promotion_worker", "recover", *args, timeout=1800)
        after = checked("worker killed mid-run, then recovered", args)
        samples.add(
            "worker killed mid-run, then recovered", "recover s", recovered["recover_seconds"]
        )
        notes.append(
            f"Killed run: at the kill {before['queued_rows']} rows were still queued and "
            f"{before['orphans']} stored files were unreferenced (copies the killed worker had "
            f"written); the recovery (a restarted worker, then the collector with grace 0) "
            f"promoted the rest in {recovered['recover_seconds']:.1f} s and removed "
            f"{recovered['orphans_removed']} orphans; afterwards missing={after['missing']}, "
            f"orphans={after['orphans']}, queued={after['queued_rows']}."
        )
        reset_database(url)
        server.remove_bucket(bucket)
    finally:
        server.stop()
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    return [
        SectionResult(
            name=SECTION,
            samples=samples,
            targets=[
                Target(
                    SECTION,
                    "time until the commits return",
                    "queue + promotion",
                    "S3 direct",
                    "commit rows/s",
                    1.0,
                ),
                Target(
                    SECTION,
                    "time until the commits return, nothing promoted meanwhile",
                    "queue, promoted afterwards",
                    "S3 direct",
                    "commit rows/s",
                    0.0,
                ),
                Target(
                    SECTION,
                    "time until every file is public",
                    "queue + promotion",
                    "S3 direct",
                    "promoted rows/s",
                    0.0,
                    "direct: public at its commit",
                ),
            ],
            limits=[
                Limit(
                    SECTION,
                    "0 missing, 0 orphans",
                    "queue + promotion",
                    "missing+orphans",
                    0,
                    "files",
                ),
                Limit(SECTION, "0 missing, 0 orphans", "S3 direct", "missing+orphans", 0, "files"),
                Limit(
                    SECTION,
                    "0 missing, 0 orphans after a kill -9",
                    "worker killed mid-run, then recovered",
                    "missing+orphans",
                    0,
                    "files",
                ),
                Limit(
                    SECTION,
                    "everything promoted",
                    "queue + promotion",
                    "queued rows left",
                    0,
                    "rows",
                ),
            ],
            info=[
                (case, metric, unit)
                for case in CASES.values()
                for metric, unit in (
                    ("until commit s", "s"),
                    ("commit rows/s", "rows/s"),
                    ("until promoted s", "s"),
                    ("promoted rows/s", "rows/s"),
                )
            ]
            + [("worker killed mid-run, then recovered", "recover s", "s")],
            notes=[
                f"{database}; 10 rows per commit, one process; the promotion runs in the "
                "embedded executor (4 threads) of the same process while the commits go on. "
                "`until commit` = all 100 commits returned (what requests wait for); "
                "`until promoted` = from the first commit until the last file is in S3 and its "
                "row updated. `promoted rows/s` of the promotion is compared with the direct "
                "upload's commit rows/s. `queue, promoted afterwards`: the commits run with "
                "no promotion in the process (as with a separate worker), then the embedded "
                "executor promotes everything; its `until promoted` counts both.",
                "SeaweedFS runs on loopback: a direct S3 upload pays no network latency, which "
                "is what a queue storage saves a request in production.",
                *notes,
            ],
        )
    ]
