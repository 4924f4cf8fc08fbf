"""ORM benchmark: sa_depot vs filedepot vs sqlalchemy-file, on SQLite and PostgreSQL.

Each library runs in a child process of its own (:mod:`benchmarks.orm_worker`), because
filedepot and sqlalchemy-file install global Session listeners when imported. The children run
in lockstep: each transaction of ``BATCH`` rows goes to every library in turn (the order
rotating between repetitions), and each child times its own transactions.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from benchmarks.common import REPO, WORK, Limit, Samples, SectionResult, Target, fresh_dir
from benchmarks.orm_worker import BATCH, ROWS, SCENARIO_ROWS

LIBRARIES = ["sa_depot", "filedepot", "sqlalchemy-file", "filedepot-locked-read"]
#: sa_depot's default durability, measured in the first repetition only (for information:
#: its fsync cost is measured in the storage section; this keeps the run short).
ONCE: list[str] = []  # e.g. ["sa_depot-fsync"]: 45 s more per database on this machine
SCENARIOS = ["insert", "replace", "delete", "rollback", "exception", "bulk delete"]
PG_ADMIN_URL = "host=127.0.0.1 user=postgres dbname=test"
PG_BENCH_DB = "sa_depot_bench"


def postgresql_url() -> str | None:
    """A database of the benchmark's own (so that no test's tables are touched), or None."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_BENCH_DB,)
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
    except Exception as exc:  # noqa: BLE001 - report and go on with SQLite
        print(f"   PostgreSQL unavailable, skipped: {exc}")
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1/{PG_BENCH_DB}"


def record(samples: Samples, library: str, scenario: str, counts: dict[str, int]) -> None:
    for kind in ("orphans", "missing"):
        samples.add(library, f"{scenario} {kind}", counts[kind])


@contextlib.contextmanager
def workers(libraries: list[str], url: str | None) -> Iterator[dict[str, Any]]:
    """Start one worker per library; yield ``{library: call(command, *args) -> answer}``."""
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        for library in libraries:
            directory = fresh_dir("orm", library)
            if url is None:
                database = WORK / "orm" / f"{library}.db"
                database.unlink(missing_ok=True)
                db_url = f"sqlite:///{database}"
            else:
                db_url = url
            table = "bench_" + library.replace("-", "_")
            processes[library] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.orm_worker", library, db_url,
                 str(directory), table],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip

        def caller(process: subprocess.Popen[str]) -> Any:
            def call(command: str, *args: object) -> Any:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(" ".join([command, *map(str, args)]) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(f"the ORM worker died during {command!r}")
                return json.loads(line)

            return call

        calls = {library: caller(process) for library, process in processes.items()}
        for library, process in processes.items():
            assert process.stdout is not None
            if not process.stdout.readline():
                raise RuntimeError(f"the {library} ORM worker did not start")
        yield calls
    finally:
        for process in processes.values():
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    assert process.stdin is not None
                    process.stdin.write("quit\n")
                    process.stdin.close()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def run(repetitions: int) -> list[SectionResult]:
    databases = {"SQLite": None, "PostgreSQL": postgresql_url()}
    results = []
    for db_name, url in databases.items():
        section = f"ORM on {db_name} ({ROWS} rows, {BATCH} per commit)"
        if db_name == "PostgreSQL" and url is None:
            results.append(SectionResult(section, Samples(), skipped="PostgreSQL is not running"))
            continue
        samples = Samples()
        for rep in range(repetitions):
            shift = rep % len(LIBRARIES)
            order = LIBRARIES[shift:] + LIBRARIES[:shift] + (ONCE if rep == 0 else [])
            with workers(order, url) as children:
                for phase in ("insert", "replace", "delete"):
                    spent = dict.fromkeys(order, 0.0)
                    for first in range(0, ROWS, BATCH):
                        for library in order:
                            spent[library] += children[library](phase, first)["seconds"]
                    for library in order:
                        samples.add(library, f"{phase} rows/s", ROWS / spent[library])
                        record(samples, library, phase, children[library]("check"))
                for scenario in ("rollback", "exception", "bulk delete"):
                    for library in order:
                        counts = children[library](scenario.replace(" ", "_"))
                        record(samples, library, scenario, counts)
                for library in order:
                    children[library]("finish")
                    bad = sum(
                        samples.get(library, f"{s} {k}")[-1]
                        for s in SCENARIOS
                        for k in ("orphans", "missing")
                    )
                    samples.add(library, "orphans+missing", bad)
        targets = [
            Target(
                section,
                "ORM insert+commit",
                "sa_depot",
                "filedepot",
                "insert rows/s",
                1.0,
                "both without fsync",
            ),
        ]
        # issue 19: never slower than filedepot or sqlalchemy-file on any ORM path
        more_targets = [
            ("sa_depot", "sqlalchemy-file", "insert rows/s"),
            ("sa_depot", "filedepot", "replace rows/s"),
            ("sa_depot", "filedepot", "delete rows/s"),
        ]
        for case, baseline, metric in more_targets:
            targets.append(Target(section, "ORM " + metric.split()[0], case, baseline, metric, 1.0))
        for case, baseline, metric in [
            ("sa_depot", "sqlalchemy-file", "replace rows/s"),
            ("sa_depot", "sqlalchemy-file", "delete rows/s"),
        ]:
            targets.append(Target(section, metric.split()[0], case, baseline, metric, 0.0))
        for metric in ("replace rows/s", "delete rows/s"):
            targets.append(
                Target(
                    section,
                    f"ceiling of {metric.split()[0]} with the locked read alone",
                    "filedepot-locked-read",
                    "filedepot",
                    metric,
                    0.0,
                )
            )
        limits = [
            Limit(
                section,
                "zero orphans and missing files, every scenario",
                "sa_depot",
                "orphans+missing",
                0,
                "files",
            ),
        ]
        everyone = LIBRARIES + ONCE
        info = [
            (library, f"{phase} rows/s", "rows/s")
            for library in everyone
            for phase in ("insert", "replace", "delete")
        ]
        extra = [
            "",
            "Orphans / missing files each scenario left (worst repetition):",
            "",
            "| library | " + " | ".join(SCENARIOS) + " |",
            "|---" * (len(SCENARIOS) + 1) + "|",
        ]
        for library in everyone:
            cells = []
            for scenario in SCENARIOS:
                orphans = samples.get(library, f"{scenario} orphans")
                missing = samples.get(library, f"{scenario} missing")
                cells.append(f"{max(orphans):g} / {max(missing):g}" if orphans else "n/a")
            extra.append(f"| {library} | " + " | ".join(cells) + " |")
        results.append(
            SectionResult(
                name=section,
                samples=samples,
                targets=targets,
                limits=limits,
                info=info,
                extra=extra,
                notes=[
                    "sa_depot = LocalFileStorage(fsync=False), the durability of filedepot's "
                    "and sqlalchemy-file's local storages, which never fsync (the cost of "
                    "sa_depot's default fsync=True is in the small-files section). Every "
                    "library gets FileIntent/File content with filename and content type, so "
                    "none sniffs the content.",
                    f"Orphans and missing files are counted after each scenario (only those "
                    f"the scenario added) by comparing the storage's listing with the committed "
                    f"rows; rollback, exception and bulk delete use {SCENARIO_ROWS} rows each.",
                    "PostgreSQL runs in a database of the benchmark's own (sa_depot_bench), "
                    "synchronous_commit on.",
                    "filedepot-locked-read = filedepot plus one SELECT of the row's file column "
                    "FOR UPDATE before each UPDATE or DELETE (SQLite has no row locks: a plain "
                    "SELECT), the read that makes the last writer let go of the file the row "
                    "holds now (tests/crash/test_stale_values.py) and nothing else of sa_depot: "
                    "the ceiling of replace and delete for any design that keeps it.",
                ],
            )
        )
    return results
