"""CPU instructions per operation, counted by valgrind's callgrind: a figure the disk's and the
machine's noise cannot move, reported beside the timed ratios that they can flip.

Each case runs ``benchmarks.instructions_worker`` twice under callgrind, with 0 and with N
operations; (instructions(N) - instructions(0)) / N is the cost of one operation in the
process's own code (Python, sa_depot, libc). Time spent in the kernel (the write, the fsync and
the wait for the disk) is not counted: callgrind counts user-space instructions only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import BENCH_DIR, WORK, Samples, SectionResult, Target

SECTION = "CPU instructions per operation (callgrind)"
#: (case label, worker contender, operation, N)
CASES = [
    ("create 1 KiB: sa_depot local no-fsync", "sa_depot local no-fsync", "create", 200),
    ("create 1 KiB: filedepot local", "filedepot local", "create", 200),
    ("create 1 KiB: raw no-fsync", "raw no-fsync", "create", 200),
    ("create 1 KiB: sa_depot local fsync", "sa_depot local fsync", "create", 100),
    ("create 1 KiB: raw fsync", "raw fsync", "create", 100),
    ("get+read 1 KiB: sa_depot local no-fsync", "sa_depot local no-fsync", "read", 400),
    ("get+read 1 KiB: filedepot local", "filedepot local", "read", 400),
    ("create 16 MiB: sa_depot no-fsync", "sa_depot no-fsync", "large", 2),
    ("create 16 MiB: raw no-fsync", "raw no-fsync", "large", 2),
    ("create 16 MiB: raw no-fsync + SHA-256", "raw no-fsync + SHA-256", "large", 2),
    ("serve 1 KiB: sa_depot middleware", "sa_depot", "serve", 1000),
    ("serve 1 KiB: filedepot middleware", "filedepot", "serve", 1000),
    ("ORM insert row, SQLite: sa_depot", "sa_depot", "orm-insert", 50),
    ("ORM insert row, SQLite: filedepot", "filedepot", "orm-insert", 50),
    ("ORM replace row, SQLite: sa_depot", "sa_depot", "orm-replace", 50),
    ("ORM replace row, SQLite: filedepot", "filedepot", "orm-replace", 50),
    ("ORM delete row, SQLite: sa_depot", "sa_depot", "orm-delete", 50),
    ("ORM delete row, SQLite: filedepot", "filedepot", "orm-delete", 50),
]


def instructions(contender: str, operation: str, count: int) -> int:
    """Instructions (``Ir``) of one run of the worker under callgrind."""
    # the worker's storage directory starts empty: removing files left by an earlier run
    # would be counted in this one
    for section in ("small", "instructions"):
        shutil.rmtree(WORK / section / contender, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.instructions_worker",
                contender,
                operation,
                str(count),
            ],
            cwd=BENCH_DIR.parent,
            # a fixed hash seed: str hashes, hence the order of sets and the collisions of
            # dicts, are the same in every run of the worker
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
        )
        match = re.search(r"^summary:\s+(\d+)", out.read_text(errors="replace"), re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no summary in callgrind's output for {contender} {operation}")
        return int(match.group(1))


def run(repetitions: int) -> list[SectionResult]:
    samples = Samples()
    if shutil.which("valgrind") is None:
        return [SectionResult(SECTION, samples, skipped="valgrind is not installed")]
    for label, contender, operation, count in CASES:
        base = instructions(contender, operation, 0)
        total = instructions(contender, operation, count)
        samples.add(label, "instructions/op", (total - base) / count)
    pairs = [
        ("create 1 KiB", "sa_depot local no-fsync", "filedepot local"),
        ("create 1 KiB", "sa_depot local no-fsync", "raw no-fsync"),
        ("create 1 KiB", "sa_depot local fsync", "raw fsync"),
        ("get+read 1 KiB", "sa_depot local no-fsync", "filedepot local"),
        ("create 16 MiB", "sa_depot no-fsync", "raw no-fsync"),
        ("create 16 MiB", "sa_depot no-fsync", "raw no-fsync + SHA-256"),
        ("serve 1 KiB", "sa_depot middleware", "filedepot middleware"),
        ("ORM insert row, SQLite", "sa_depot", "filedepot"),
        ("ORM replace row, SQLite", "sa_depot", "filedepot"),
        ("ORM delete row, SQLite", "sa_depot", "filedepot"),
    ]
    # the ratio is baseline / sa_depot instructions: higher is better, like the timed ratios
    targets = [
        Target(
            SECTION,
            f"{what}, baseline / sa_depot",
            f"{what}: {base}",
            f"{what}: {case}",
            "instructions/op",
            0.0,
        )
        for what, case, base in pairs
    ]
    return [
        SectionResult(
            name=SECTION,
            samples=samples,
            targets=targets,
            info=[(label, "instructions/op", "instructions") for label, *_ in CASES],
            notes=[
                "Counted once (instruction counts repeat to within a fraction of a percent); "
                "in the targets table these rows give baseline instructions / sa_depot "
                "instructions, so that higher is better there too (0.5x: sa_depot runs twice "
                "the baseline's instructions).",
                "Only user-space instructions count: the kernel's work (writes, fsync, waiting "
                "for the disk) is not in these figures, which is what makes them stable.",
                "serve 1 KiB = one GET of a 1 KiB local file through the middleware of the "
                "serving section (benchmarks/serve_apps.py), called in-process as a WSGI "
                "server calls it, body read and closed; the server's own work is not counted.",
                "ORM rows = the ORM section's workload (benchmarks/orm_worker.py: 1 KiB files, "
                "10 rows per transaction, rows loaded with session.get for replace and delete) "
                "on SQLite, storage work included, both libraries without fsync; SQLite's own "
                "C code counts too, its disk writes do not. Python's cyclic garbage collector "
                "is paused during the counted rows (after a full pass), for both libraries: "
                "where its passes fell moved these counts by about 10% between runs.",
            ],
        )
    ]
