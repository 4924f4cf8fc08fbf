"""GridFS storages for the tests: on mongomock always, on a real MongoDB when
``SA_DEPOT_TEST_MONGODB_URL`` is set (a URI with a database name; each test uses a database of
its own on that server, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sa_depot.io.gridfs import GridFSStorage
from sa_depot.io.interfaces import FileStorage

MONGODB_URL = os.environ.get("SA_DEPOT_TEST_MONGODB_URL", "")


def mongomock_database() -> Any:
    """A fresh in-memory database (mongomock), with gridfs.GridFS working on it."""
    import mongomock
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()
    return mongomock.MongoClient()[f"db{uuid.uuid4().hex[:8]}"]


@contextmanager
def real_mongodb_uri() -> Iterator[str]:
    """A URI naming a fresh database on the server of SA_DEPOT_TEST_MONGODB_URL."""
    if not MONGODB_URL:
        pytest.skip("SA_DEPOT_TEST_MONGODB_URL is not set: no real MongoDB to test against")
    from pymongo import MongoClient
    from pymongo.uri_parser import parse_uri

    name = f"sa_depot_t_{uuid.uuid4().hex[:12]}"
    parsed = parse_uri(MONGODB_URL)
    base, _, query = MONGODB_URL.partition("?")
    authority = base.split("://", 1)[1].split("/", 1)[0]
    options = f"?{query}" if query else ""
    if parsed.get("database") and parsed.get("username") and "authSource" not in query:
        options += ("&" if options else "?") + f"authSource={parsed['database']}"
    uri = f"{base.split('://', 1)[0]}://{authority}/{name}{options}"
    yield uri
    client: MongoClient[Any] = MongoClient(MONGODB_URL, serverSelectionTimeoutMS=5000)
    client.drop_database(name)
    client.close()


def _contract_chunk_size() -> int:
    from tests.storages import CONTRACT_CHUNK_SIZE

    return CONTRACT_CHUNK_SIZE


@contextmanager
def gridfs_mongomock_storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[FileStorage]:
    yield GridFSStorage(mongomock_database(), chunk_size=_contract_chunk_size())


@contextmanager
def gridfs_mongodb_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    with real_mongodb_uri() as uri:
        yield GridFSStorage(uri, chunk_size=_contract_chunk_size())


def gridfs_child_config(storage: FileStorage) -> dict[str, str]:
    assert isinstance(storage, GridFSStorage) and storage._uri
    return {
        "depot.backend": "sa_depot.io.gridfs.GridFSStorage",
        "depot.mongouri": storage._uri,
        "depot.collection": storage.collection,
    }


def gridfs_raw_contents(storage: FileStorage) -> set[str]:
    """Every files document and every chunk of the storage's collections."""
    assert isinstance(storage, GridFSStorage)
    found = {f"files:{doc['_id']}" for doc in storage.files.find({}, {"_id": 1})}
    found |= {
        f"chunks:{doc['files_id']}:{doc['n']}"
        for doc in storage.chunks.find({}, {"files_id": 1, "n": 1})
    }
    return found
