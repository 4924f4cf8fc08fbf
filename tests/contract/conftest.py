"""Fixtures of the storage contract suite: ``(backend_name, contract_check)`` pairs cover every
storage of tests/storages.py and every check of :mod:`sa_depot.testing` it can run; a check a
backend cannot run (no ``child_config``, memory kept by design) is not generated for it, rather
than skipped behind a green run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sa_depot.io.interfaces import FileStorage
from sa_depot.testing import CHECKS
from tests.storages import STORAGES, StorageBackend


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contract_check" not in metafunc.fixturenames:
        return
    pairs = []
    for name, backend in STORAGES.items():
        for check in CHECKS.values():
            if "config" in check.needs and backend.child_config is None:
                continue
            if check.name == "bounded_memory" and not backend.bounded_memory:
                continue
            pairs.append(pytest.param(name, check, id=f"{name}-{check.name}"))
    metafunc.parametrize(("backend_name", "contract_check"), pairs, indirect=["backend_name"])


@pytest.fixture
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_name: str) -> StorageBackend:
    return STORAGES[backend_name]


@pytest.fixture
def storage(
    backend: StorageBackend, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[FileStorage]:
    """A fresh, empty storage of the backend under test."""
    with backend.factory(request, tmp_path) as fresh:
        yield fresh
