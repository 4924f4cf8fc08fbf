"""What every benchmark section shares: timing, repetitions, ratios, child processes."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work"  # generated data and servers' state; gitignored
KiB = 1024
MiB = 1024 * KiB


def fresh_dir(*parts: str) -> Path:
    """An empty directory under ``benchmarks/work``."""
    path = WORK.joinpath(*parts)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def timed(func: Callable[[], Any]) -> float:
    """Seconds taken by ``func()``."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def rss_kib() -> int:
    """The current resident set size of this process, in KiB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // KiB


def peak_rss_kib() -> int:
    """The peak resident set size of this process, in KiB.

    ``ru_maxrss`` alone would do, but Linux carries it across ``execve``: a child started by a
    parent of 30 MiB reports at least 30 MiB. ``VmHWM`` is the high-water mark of this
    process's own memory map only, so the smaller of the two is the child's own peak.
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return min(maxrss, int(line.split()[1]))
    except OSError:
        pass
    return maxrss


def run_child(module: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> args...`` and return the JSON it prints last.

    Children isolate what must not share a process: peak RSS, and libraries (filedepot,
    sqlalchemy-file) that install global SQLAlchemy listeners at import time.
    """
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmarks.{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(result: dict[str, Any]) -> None:
    """Print a child's result as the last line of its output."""
    print(json.dumps(result), flush=True)


@dataclass
class Samples:
    """Per-repetition measurements: ``values[case][metric] -> [one value per repetition]``."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, case: str, metric: str, value: float) -> None:
        self.values.setdefault(case, {}).setdefault(metric, []).append(value)

    def get(self, case: str, metric: str) -> list[float]:
        return self.values.get(case, {}).get(metric, [])

    def median(self, case: str, metric: str) -> float | None:
        data = self.get(case, metric)
        return statistics.median(data) if data else None

    def ratio(self, case: str, baseline: str, metric: str) -> float | None:
        """The median of per-repetition ratios ``case / baseline`` (higher is better)."""
        ours, theirs = self.get(case, metric), self.get(baseline, metric)
        pairs = [(a, b) for a, b in zip(ours, theirs, strict=True) if b]
        if not pairs:
            return None
        return statistics.median(a / b for a, b in pairs)


@dataclass
class Target:
    """One row of the targets table: ``case / baseline`` on ``metric`` must reach ``minimum``."""

    section: str
    label: str
    case: str
    baseline: str
    metric: str
    minimum: float
    note: str = ""


@dataclass
class Limit:
    """An absolute ceiling (peak RSS, orphan count) that a measured median must stay under."""

    section: str
    label: str
    case: str
    metric: str
    maximum: float
    unit: str
    note: str = ""


@dataclass
class SectionResult:
    """What a section hands to the report."""

    name: str
    samples: Samples
    targets: list[Target] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)
    #: (case, metric, unit) rows listed for information
    info: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: markdown lines added after the section's table
    extra: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0
    group: str = ""  # the section of bench.py that measured it
