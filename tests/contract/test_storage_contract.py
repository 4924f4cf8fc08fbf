"""The storage contract: every storage of tests/storages.py passes every check of
:mod:`sa_depot.testing` (the linter users run on their own storages), one test per check.

A check that needs what a backend cannot give (``config``: the storage opened in another
process) is not generated for it, rather than skipped; a backend that keeps files in memory by
design does not get the bounded-memory check (``StorageBackend.bounded_memory``).
"""

from __future__ import annotations

from pathlib import Path

from sa_depot.io.interfaces import FileStorage
from sa_depot.testing import Check, LintContext, run_check
from tests.storages import StorageBackend


def test_contract(
    backend: StorageBackend, storage: FileStorage, contract_check: Check, tmp_path: Path
) -> None:
    context = LintContext(
        storage,
        tmp_path,
        config=backend.child_config(storage) if backend.child_config else None,
        raw_contents=backend.raw_contents,
    )
    run_check(contract_check, context)
    assert set(storage.list()) == context.before  # the check cleaned up after itself
