"""ORM benchmark: sa_depot vs filedepot vs sqlalchemy-file, on SQLite and PostgreSQL.

Each (library, database) pair runs in a child process (:mod:`benchmarks.orm_worker`); within a
repetition every pair runs once, the library order rotating between repetitions.
"""

from __future__ import annotations

import os

from benchmarks.common import WORK, Limit, Samples, SectionResult, Target, fresh_dir, run_child
from benchmarks.orm_worker import BATCH, ROWS, SCENARIO_ROWS

LIBRARIES = ["sa_depot", "filedepot", "sqlalchemy-file"]
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
            for library in LIBRARIES[shift:] + LIBRARIES[:shift] + (ONCE if rep == 0 else []):
                directory = fresh_dir("orm", library)
                if url is None:
                    db_url = f"sqlite:///{WORK / 'orm' / (library + '.db')}"
                    if os.path.exists(WORK / "orm" / (library + ".db")):
                        os.unlink(WORK / "orm" / (library + ".db"))
                else:
                    db_url = url
                table = "bench_" + library.replace("-", "_")
                out = run_child("orm_worker", library, db_url, str(directory), table)
                for phase in ("insert", "replace", "delete"):
                    samples.add(library, f"{phase} rows/s", ROWS / out[f"{phase} s"])
                for scenario in SCENARIOS:
                    for kind in ("orphans", "missing"):
                        samples.add(library, f"{scenario} {kind}", out[f"{scenario} {kind}"])
                bad = sum(out[f"{s} {k}"] for s in SCENARIOS for k in ("orphans", "missing"))
                samples.add(library, "orphans+missing", bad)
        targets = [
            Target(
                section,
                "ORM insert+commit",
                "sa_depot",
                "filedepot",
                "insert rows/s",
                2.0,
                "both without fsync",
            ),
        ]
        info_targets = [
            ("sa_depot", "sqlalchemy-file", "insert rows/s"),
            ("sa_depot", "filedepot", "replace rows/s"),
            ("sa_depot", "filedepot", "delete rows/s"),
        ]
        for case, baseline, metric in info_targets:
            targets.append(Target(section, metric.split()[0], case, baseline, metric, 0.0))
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
                ],
            )
        )
    return results
