"""The storage contract as a linter: prove that a storage, sa_depot's or your own, honours it.

::

    from sa_depot.testing import lint_storage

    report = lint_storage(MyStorage(...))   # raises StorageLintError listing what failed
    print(report)

:func:`lint_storage` runs every check of :mod:`sa_depot.testing.contract` (Shrine's storage
linter is the model): the five primitives through the public API, every kind of input, unicode
filenames, metadata, seeking, replace and copy, ``iter_ids``, readable keys (nested ids
created, read, listed and deleted; traversal refused; unique on collision), error classes for
malformed and absent ids, atomic visibility under concurrent replaces, failed writes leaving
nothing, threads (and processes, given ``config``) creating at once, ``public_url``, and
bounded memory on a 256 MiB file. Every built-in storage passes it (tests/contract/).

Run it against an empty storage made for the purpose (a temporary directory, a test bucket or
prefix): the checks create files and delete them afterwards, and they compare listings with
what was there before each check.

In a pytest suite, one test per check reports each failure on its own::

    import pytest
    from sa_depot.testing import CHECKS, lint_storage

    @pytest.mark.parametrize("name", CHECKS)
    def test_storage_contract(name, tmp_path):
        lint_storage(MyStorage(tmp_path), checks=[name])

No pytest import: the linter runs anywhere.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sa_depot.io.interfaces import FileStorage
from sa_depot.testing.contract import (
    CHECKS,
    LARGE_FILE_SIZE,
    MEMORY_BOUND,
    Check,
    LintContext,
    iter_checks,
)

__all__ = [
    "CHECKS",
    "Check",
    "LintContext",
    "LintReport",
    "StorageLintError",
    "lint_storage",
    "run_check",
]


@dataclass
class LintReport:
    """What :func:`lint_storage` ran: checks passed (with their time in seconds), failed (with
    the reason), skipped (with why), and what the checks measured."""

    storage: str
    passed: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        lines = [f"storage contract of {self.storage}: {len(self.passed)} passed, "
                 f"{len(self.failed)} failed, {len(self.skipped)} skipped"]  # fmt: skip
        lines += [f"  FAILED {name}: {reason}" for name, reason in self.failed.items()]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped.items()]
        lines += [f"  measured {name}: {values}" for name, values in self.measured.items()]
        return "\n".join(lines)


class StorageLintError(AssertionError):
    """A storage broke the contract; :attr:`report` says where."""

    def __init__(self, report: LintReport) -> None:
        self.report = report
        super().__init__(str(report))


def run_check(check: Check | str, context: LintContext) -> None:
    """Run one check against ``context.storage`` and delete what it left behind; raises
    ``AssertionError`` if the storage breaks the contract."""
    found = CHECKS[check] if isinstance(check, str) else check
    context.before = set(context.storage.list())
    try:
        found.function(context)
    finally:
        for file_id in set(context.storage.list()) - context.before:
            context.storage.delete(file_id)


def lint_storage(
    storage: FileStorage,
    *,
    config: dict[str, str] | None = None,
    raw_contents: Callable[[FileStorage], set[str]] | None = None,
    checks: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    large_file_size: int = LARGE_FILE_SIZE,
    memory_bound: int = MEMORY_BOUND,
    workdir: str | Path | None = None,
    raise_on_failure: bool = True,
) -> LintReport:
    """Check that ``storage`` honours the storage contract.

    :param storage: the storage, empty or holding only files the checks may ignore.
    :param config: ``DepotManager.from_config`` options (``{'depot.backend': ..., ...}``) that
        open the same storage in another process: enables the multi-process check and measures
        memory as the peak RSS of a fresh process (without it, as Python's allocations).
    :param raw_contents: a function listing everything the backend holds, temporary artefacts
        included, so that the failed-write check sees leftovers ``list()`` hides.
    :param checks: the names of the checks to run (default: all of :data:`CHECKS`).
    :param skip: names of checks not to run (``'bounded_memory'`` for a storage that keeps
        files in memory by design); they are listed in the report as skipped.
    :param large_file_size: bytes of the memory check's file (256 MiB).
    :param memory_bound: allowed growth of peak memory while it is created and read, in bytes.
    :param workdir: a scratch directory (default: a temporary one, removed afterwards).
    :param raise_on_failure: raise :class:`StorageLintError` when a check fails (else only
        report it).
    :returns: a :class:`LintReport`.
    :raises StorageLintError: (an ``AssertionError``) listing every failed check.
    """
    skipped = set(skip)
    report = LintReport(repr(storage))
    scratch = Path(tempfile.mkdtemp(prefix="sa-depot-lint-")) if workdir is None else None
    try:
        for check in iter_checks(iter(checks) if checks is not None else None):
            if check.name in skipped:
                report.skipped[check.name] = "skipped on request"
                continue
            if "config" in check.needs and config is None:
                report.skipped[check.name] = "needs config (the storage in another process)"
                continue
            directory = Path(workdir) if workdir is not None else scratch
            assert directory is not None
            context = LintContext(
                storage,
                directory,
                config=config,
                raw_contents=raw_contents,
                large_file_size=large_file_size,
                memory_bound=memory_bound,
            )
            started = time.monotonic()
            try:
                run_check(check, context)
            except AssertionError as exc:
                report.failed[check.name] = str(exc) or "assertion failed"
            except Exception as exc:  # noqa: BLE001 - a storage's error is a failed check
                report.failed[check.name] = f"{type(exc).__name__}: {exc}"
            else:
                report.passed[check.name] = round(time.monotonic() - started, 2)
            if context.measured:
                report.measured[check.name] = context.measured
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if raise_on_failure and report.failed:
        raise StorageLintError(report)
    return report
