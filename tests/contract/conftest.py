"""Fixtures of the storage contract suite: ``storage`` is parametrised over tests/storages.py.

``@pytest.mark.backend_needs("capability", ...)`` restricts a test to the backends whose
:class:`~tests.storages.StorageBackend` has those capabilities; the others do not get the test
at all (rather than a skip that would hide a missing capability behind a green run).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sa_depot.io.interfaces import FileStorage
from sa_depot.io.memory import MemoryFileStorage
from tests.storages import STORAGES, StorageBackend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backend_needs(*capabilities): run a contract test only on the storages of "
        "tests/storages.py that have these capabilities",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" not in metafunc.fixturenames:
        return
    needs = [cap for mark in metafunc.definition.iter_markers("backend_needs") for cap in mark.args]
    for cap in needs:
        if not hasattr(StorageBackend, cap):
            raise pytest.UsageError(f"{metafunc.function.__name__}: unknown capability {cap!r}")
    names = [name for name, b in STORAGES.items() if all(getattr(b, cap) for cap in needs)]
    metafunc.parametrize("backend_name", names, indirect=True)


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


@pytest.fixture
def other_storage() -> MemoryFileStorage:
    """Another storage, source of StoredFiles that do not belong to the one under test."""
    return MemoryFileStorage()
