"""Run every benchmark section and write benchmarks/RESULTS.md.

    benchmarks/.venv/bin/python -m benchmarks.bench [--repetitions N] [--only SECTION ...]

Use ``bash benchmarks/run.sh``, which prepares the environment first.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import BENCH_DIR, WORK, Samples, SectionResult

SECTIONS: dict[str, Callable[[int], list[SectionResult]]] = {}


def _register() -> None:
    from benchmarks import (
        bench_async,
        bench_instructions,
        bench_orm,
        bench_promotion,
        bench_s3,
        bench_scale,
        bench_serving,
        bench_storage,
    )

    SECTIONS["small"] = lambda reps: [bench_storage.small_files(reps)]
    SECTIONS["large"] = lambda reps: [bench_storage.large_file(reps)]
    SECTIONS["orm"] = bench_orm.run
    SECTIONS["serving"] = bench_serving.run
    SECTIONS["s3"] = bench_s3.run
    SECTIONS["stall"] = bench_async.run
    SECTIONS["promotion"] = bench_promotion.run
    SECTIONS["scale"] = bench_scale.run
    SECTIONS["instructions"] = bench_instructions.run


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "Python": platform.python_version(),
        # BENCH_REVISION names the commit when the run is made from an exported snapshot
        "sa_depot commit": os.environ.get("BENCH_REVISION") or _git("rev-parse", "--short", "HEAD"),
    }


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=BENCH_DIR, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 100:
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def render(results: list[SectionResult], repetitions: int, elapsed: float) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()
    lines = [
        "# Benchmark results",
        "",
        "Written by `bash benchmarks/run.sh` (see README). Do not edit by hand.",
        "",
        f"- Date: {now}",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- Repetitions: {repetitions} per case (5 for the large-file cases); total run time "
        f"{elapsed / 60:.1f} min",
        "",
        "Ratios are medians of per-repetition ratios (sa_depot / baseline, measured in the same "
        "repetition, higher is better); absolute numbers are medians over the repetitions, for "
        "information only: the machine is shared and noisy.",
        "",
        "## Targets",
        "",
        "| section | case | compared with | metric | target | measured | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.skipped:
            lines.append(f"| {result.name} | *not measured* | | | | | {result.skipped} |")
            continue
        for target in result.targets:
            ratio = result.samples.ratio(target.case, target.baseline, target.metric)
            if not target.minimum:  # a comparison listed for information
                wanted, verdict = "-", "(info)"
            else:
                wanted = f">= {target.minimum:g}x"
                verdict = "n/a" if ratio is None else "met" if ratio >= target.minimum else "MISSED"
            note = f" ({target.note})" if target.note else ""
            lines.append(
                f"| {result.name} | {target.label}: {target.case} | {target.baseline}{note} | "
                f"{target.metric} | {wanted} | {fmt(ratio)}x | {verdict} |"
            )
        for limit in result.limits:
            data = result.samples.get(limit.case, limit.metric)
            worst = max(data) if data else None
            verdict = "n/a" if worst is None else ("met" if worst <= limit.maximum else "MISSED")
            note = f" ({limit.note})" if limit.note else ""
            lines.append(
                f"| {result.name} | {limit.label}: {limit.case}{note} | (absolute, worst "
                f"repetition) | {limit.metric} | <= {limit.maximum:g} {limit.unit} | "
                f"{fmt(worst)} {limit.unit} | {verdict} |"
            )
    for result in results:
        lines += ["", f"## {result.name}", ""]
        if result.skipped:
            lines += [f"Not measured: {result.skipped}", ""]
            continue
        lines += [f"Run time of the `{result.group}` section: {result.seconds:.0f} s.", ""]
        lines += _info_table(result.samples, result.info)
        lines += result.extra
        if result.notes:
            lines.append("")
            lines += [f"- {note}" for note in result.notes]
    analysis = BENCH_DIR / "ANALYSIS.md"
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    return "\n".join(lines) + "\n"


def _info_table(samples: Samples, rows: list[tuple[str, str, str]]) -> list[str]:
    metrics: list[tuple[str, str]] = []
    for _, metric, unit in rows:
        if (metric, unit) not in metrics:
            metrics.append((metric, unit))
    cases: list[str] = []
    for case, _, _ in rows:
        if case not in cases:
            cases.append(case)
    header = "| case | " + " | ".join(f"{m} ({u})" if u not in m else m for m, u in metrics) + " |"
    lines = [header, "|---" * (len(metrics) + 1) + "|"]
    for case in cases:
        cells = []
        for metric, _ in metrics:
            if (case, metric) in {(c, m) for c, m, _ in rows}:
                cells.append(fmt(samples.median(case, metric)))
            else:
                cells.append("")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="sections to run (default: all)")
    parser.add_argument("--output", default=str(BENCH_DIR / "RESULTS.md"))
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the output from the last run's measurements (after editing ANALYSIS.md)",
    )
    args = parser.parse_args()
    # the measurements of this output's last run (an exploratory run written elsewhere must
    # not replace the ones --render-only uses for RESULTS.md)
    output = Path(args.output)
    saved = WORK / (
        "results.pickle" if output == BENCH_DIR / "RESULTS.md" else f"{output.stem}.pickle"
    )
    if args.render_only:
        results, repetitions, elapsed = pickle.loads(saved.read_bytes())
        Path(args.output).write_text(render(results, repetitions, elapsed))
        return
    if args.repetitions < 3 and args.output == str(BENCH_DIR / "RESULTS.md"):
        parser.error("RESULTS.md needs >= 3 repetitions; pass --output elsewhere to try less")
    _register()
    WORK.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SECTIONS)
    results: list[SectionResult] = []
    start = time.perf_counter()
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        section_start = time.perf_counter()
        try:
            section_results = SECTIONS[name](args.repetitions)
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            traceback.print_exc()
            section_results = [SectionResult(name, Samples(), skipped=f"failed: {exc!r}"[:300])]
        seconds = time.perf_counter() - section_start
        for result in section_results:
            result.seconds = seconds
            result.group = name
        print(f"   {name}: {seconds:.0f} s", file=sys.stderr, flush=True)
        results += section_results
    elapsed = time.perf_counter() - start
    saved.write_bytes(pickle.dumps((results, args.repetitions, elapsed)))
    Path(args.output).write_text(render(results, args.repetitions, elapsed))
    raw = {r.name: r.samples.values for r in results}
    (WORK / saved.name.replace(".pickle", ".samples.json")).write_text(json.dumps(raw, indent=1))
    print(f"wrote {args.output} in {elapsed / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
