"""The storages that the contract suite (tests/contract/) runs against.

Adding a backend takes one factory and one entry in :data:`STORAGES`::

    @contextmanager
    def s3_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
        endpoint = request.getfixturevalue("s3_endpoint")  # a server fixture, if needed
        storage = S3Storage(..., bucket=f"contract-{uuid.uuid4().hex}")
        yield storage
        ...  # drop the bucket

    STORAGES["s3"] = StorageBackend(
        s3_storage,
        child_config=lambda s: {"depot.backend": "sa_depot.io.boto3.S3Storage", ...},
        raw_contents=lambda s: {...every object key in the bucket...},
    )

Every factory yields a fresh, empty storage. Capabilities (the fields of
:class:`StorageBackend`) decide which checks of :mod:`sa_depot.testing` run on a backend: the
multi-process check and the child-process memory measure need ``child_config``; a storage that
keeps files in memory by design has ``bounded_memory=False`` and no memory check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sa_depot.io.interfaces import FileStorage
from sa_depot.io.local import LocalFileStorage
from sa_depot.io.memory import MemoryFileStorage
from tests.azureserver import azure_child_config, azure_contract_storage, azure_raw_contents
from tests.gcsserver import gcs_child_config, gcs_contract_storage, gcs_raw_contents
from tests.gridfs.support import (
    MONGODB_URL,
    gridfs_child_config,
    gridfs_mongodb_storage,
    gridfs_mongomock_storage,
    gridfs_raw_contents,
)
from tests.s3server import s3_child_config, s3_contract_storage, s3_raw_contents
from tests.swiftserver import swift_child_config, swift_contract_storage, swift_raw_contents

#: Chunk size the contract storages use where the backend allows it, so that multi-chunk
#: files stay small. Tests read ``storage.chunk_size`` and adapt to whatever a backend uses.
CONTRACT_CHUNK_SIZE = 16 * 1024

StorageFactory = Callable[[pytest.FixtureRequest, Path], AbstractContextManager[FileStorage]]


@dataclass(frozen=True)
class StorageBackend:
    """How to make a storage for the contract suite, and what it can do."""

    #: A context manager factory taking the pytest request and a fresh temporary directory,
    #: yielding an empty storage and cleaning up afterwards.
    factory: StorageFactory
    #: ``DepotManager.from_config`` options with which another process opens the same storage;
    #: ``None`` when the storage lives in one process only. Enables the multi-process check,
    #: and memory measured as a child process's peak RSS (else with tracemalloc, in process).
    child_config: Callable[[FileStorage], dict[str, str]] | None = None
    #: Whether creating and reading a file keep memory bounded whatever the file's size
    #: (enables the 256 MiB check).
    bounded_memory: bool = True
    #: Everything the backend holds, including temporary and incomplete artefacts (for local
    #: storage: every file under the directory). The "nothing left behind" tests compare it
    #: before and after a failed write; without it they can only compare ``list()``.
    raw_contents: Callable[[FileStorage], set[str]] | None = None


# -- memory -----------------------------------------------------------------------------------
@contextmanager
def memory_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    storage = MemoryFileStorage()
    storage.chunk_size = CONTRACT_CHUNK_SIZE
    yield storage


# -- local ------------------------------------------------------------------------------------
def _local_factory(*, fsync: bool) -> StorageFactory:
    @contextmanager
    def local_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
        yield LocalFileStorage(tmp_path / "storage", fsync=fsync, chunk_size=CONTRACT_CHUNK_SIZE)

    return local_storage


def local_child_config(storage: FileStorage) -> dict[str, str]:
    assert isinstance(storage, LocalFileStorage)
    return {
        "depot.backend": "sa_depot.io.local.LocalFileStorage",
        "depot.storage_path": storage.storage_path,
        "depot.fsync": str(storage.fsync).lower(),
    }


def local_files(storage: FileStorage) -> set[str]:
    """Every file (not directory) under the storage directory, relative to it."""
    assert isinstance(storage, LocalFileStorage)
    found = set()
    for directory, _, names in os.walk(storage.storage_path):
        for name in names:
            found.add(os.path.relpath(os.path.join(directory, name), storage.storage_path))
    return found


STORAGES: dict[str, StorageBackend] = {
    "memory": StorageBackend(memory_storage, bounded_memory=False),
    "local": StorageBackend(
        _local_factory(fsync=True), child_config=local_child_config, raw_contents=local_files
    ),
    "local-nofsync": StorageBackend(
        _local_factory(fsync=False), child_config=local_child_config, raw_contents=local_files
    ),
    "s3": StorageBackend(
        s3_contract_storage, child_config=s3_child_config, raw_contents=s3_raw_contents
    ),
    "gcs": StorageBackend(
        gcs_contract_storage, child_config=gcs_child_config, raw_contents=gcs_raw_contents
    ),
    "azure": StorageBackend(
        azure_contract_storage, child_config=azure_child_config, raw_contents=azure_raw_contents
    ),
    "swift": StorageBackend(
        swift_contract_storage, child_config=swift_child_config, raw_contents=swift_raw_contents
    ),
    "gridfs": StorageBackend(
        gridfs_mongomock_storage, bounded_memory=False, raw_contents=gridfs_raw_contents
    ),
    # a real MongoDB only when one is configured
    **(
        {
            "gridfs-mongodb": StorageBackend(
                gridfs_mongodb_storage,
                child_config=gridfs_child_config,
                raw_contents=gridfs_raw_contents,
            )
        }
        if MONGODB_URL
        else {}
    ),
}
