"""GridFSStorage beyond the contract: the GridFS layout (read by the gridfs package and
written by it), list by id, versions, chunk-level reading, errors and configuration.

Every test runs on mongomock and, when SA_DEPOT_TEST_MONGODB_URL is set, on a real MongoDB
(skipped otherwise: mongomock covers every test on its own).
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import gridfs
import pytest
from bson import ObjectId

from sa_depot.exceptions import ConfigurationError, FileNotFound, InvalidFileId, StorageError
from sa_depot.io.gridfs import GridFSStorage
from sa_depot.manager import DepotManager
from tests.gridfs.support import mongomock_database, real_mongodb_uri

CHUNK = 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["mongomock", "mongodb"])
def database(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "mongomock":
        yield mongomock_database()
        return
    from pymongo import MongoClient

    with real_mongodb_uri() as uri:
        client: MongoClient[Any] = MongoClient(uri)
        yield client.get_default_database()
        client.close()


@pytest.fixture
def storage(database: Any) -> GridFSStorage:
    return GridFSStorage(database, collection="files", chunk_size=CHUNK)


def test_ids_are_object_ids(storage: GridFSStorage, database: Any) -> None:
    file_id = storage.create(b"data")
    assert ObjectId.is_valid(file_id) and str(ObjectId(file_id)) == file_id
    assert database["files.files"].find_one({"_id": ObjectId(file_id)}) is not None
    with pytest.raises(InvalidFileId, match="ObjectId"):
        storage.get("zz" * 12)


def test_list_is_by_id_when_filenames_repeat(storage: GridFSStorage) -> None:
    """filedepot listed filenames here, so repeated names gave wrong ids."""
    contents = {storage.create(f"version {n}".encode(), "same.txt"): n for n in range(3)}
    assert sorted(storage.list()) == sorted(contents)
    for file_id, n in contents.items():
        with storage.get(file_id) as stored:
            assert stored.read() == f"version {n}".encode()


def test_files_follow_the_gridfs_layout(storage: GridFSStorage, database: Any) -> None:
    data = os.urandom(CHUNK * 2 + 100)
    file_id = storage.create(data, "layout.bin", "application/x-layout")

    chunks = list(database["files.chunks"].find({"files_id": ObjectId(file_id)}, sort=[("n", 1)]))
    assert [(c["n"], len(c["data"])) for c in chunks] == [(0, CHUNK), (1, CHUNK), (2, 100)]
    # The gridfs package reads it as any GridFS file.
    grid_out = gridfs.GridFS(database, collection="files").get(ObjectId(file_id))
    assert grid_out.read() == data
    assert grid_out.filename == "layout.bin"
    assert grid_out.length == len(data)
    document = database["files.files"].find_one({"_id": ObjectId(file_id)})
    assert document["contentType"] == "application/x-layout"
    assert document["metadata"]["sha256"] == sha256(data)


def test_files_written_by_gridfs_and_filedepot_are_read(
    storage: GridFSStorage, database: Any
) -> None:
    fs = gridfs.GridFS(database, collection="files")
    plain = fs.put(b"plain gridfs file", filename="plain.txt")
    filedepot_like = fs.put(
        b"%PDF-1.4 filedepot",
        filename="café.pdf",
        contentType="application/pdf",
        last_modified=datetime(2020, 1, 2, 3, 4, 5),
    )

    with storage.get(str(filedepot_like)) as stored:
        assert stored.read() == b"%PDF-1.4 filedepot"
        assert (stored.filename, stored.content_type) == ("café.pdf", "application/pdf")
        assert stored.last_modified == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert stored.checksum is None
        assert stored.content_length == 18
    with storage.get(str(plain)) as stored:
        assert stored.read() == b"plain gridfs file"
        assert stored.content_type == "application/octet-stream"
    assert sorted(storage.list()) == sorted([str(plain), str(filedepot_like)])
    storage.delete(str(plain))
    assert database["files.chunks"].count_documents({"files_id": plain}) == 0


def test_a_replace_leaves_one_version(storage: GridFSStorage, database: Any) -> None:
    file_id = storage.create(os.urandom(CHUNK * 3), "v1.bin")
    for n in range(2, 5):
        data = os.urandom(CHUNK * n + n)
        storage.replace(file_id, data, f"v{n}.bin")
    assert database["files.files"].count_documents({}) == 1
    chunk_owners = database["files.chunks"].distinct("files_id")
    assert len(chunk_owners) == 1
    assert database["files.chunks"].count_documents({}) == 5
    with storage.get(file_id) as stored:
        assert (stored.read(), stored.filename) == (data, "v4.bin")
    assert storage.list() == [file_id]
    storage.delete(file_id)
    assert database["files.files"].count_documents({}) == 0
    assert database["files.chunks"].count_documents({}) == 0


def test_files_copied_from_another_storage_keep_their_uuid(storage: GridFSStorage) -> None:
    uuid_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    with pytest.raises(FileNotFound):
        storage.get(uuid_id)
    assert storage.replace(_stored_elsewhere(uuid_id), b"copied", "c.txt") == uuid_id
    with storage.get(uuid_id) as stored:
        assert (stored.read(), stored.filename) == (b"copied", "c.txt")
    assert storage.list() == [uuid_id]


def _stored_elsewhere(file_id: str) -> Any:
    from sa_depot.io.interfaces import FileInfo, StoredFile

    class Elsewhere(StoredFile):
        def readinto(self, buffer: Any) -> int:
            return 0

    return Elsewhere(FileInfo(file_id, "c.txt", "text/plain", datetime.now(timezone.utc)))


BIG_CHUNK = 64 * 1024


def test_reading_by_chunks_with_seeks(database: Any) -> None:
    storage = GridFSStorage(database, chunk_size=BIG_CHUNK)
    data = os.urandom(BIG_CHUNK * 40 + 7)  # larger than what is fetched at open (1 MiB)
    file_id = storage.create(io.BytesIO(data))
    with storage.get(file_id) as stored:
        assert stored.read(BIG_CHUNK + 10) == data[:BIG_CHUNK]  # one chunk at a time
        far = BIG_CHUNK * 30 + 3
        assert stored.seek(far) == far
        assert stored.read(5) == data[far : far + 5]
        stored.seek(5)
        assert stored.read(10) == data[5:15]
        stored.seek(-3, io.SEEK_END)
        assert stored.read() == data[-3:]
        stored.seek(0)
        assert b"".join(stored.chunks(4096)) == data


def test_a_file_deleted_while_being_read_is_reported(database: Any) -> None:
    storage = GridFSStorage(database, chunk_size=BIG_CHUNK)
    data = os.urandom(BIG_CHUNK * 40)
    file_id = storage.create(data)
    with storage.get(file_id) as stored:
        assert stored.read(100) == data[:100]
        storage.delete(file_id)
        with pytest.raises(StorageError, match="replaced or deleted while being read"):
            while stored.read(BIG_CHUNK):
                pass


def test_small_files_read_whole_at_open_survive_a_concurrent_replace(
    storage: GridFSStorage,
) -> None:
    file_id = storage.create(b"a" * (CHUNK * 5))
    with storage.get(file_id) as stored:
        storage.replace(file_id, b"b" * (CHUNK * 5))
        assert stored.read() == b"a" * (CHUNK * 5)
    assert storage.get(file_id).read() == b"b" * (CHUNK * 5)


def test_a_corrupt_chunk_is_reported(storage: GridFSStorage, database: Any) -> None:
    file_id = storage.create(os.urandom(CHUNK * 2))
    database["files.chunks"].update_one(
        {"files_id": ObjectId(file_id), "n": 1}, {"$set": {"data": b"short"}}
    )
    with pytest.raises(StorageError, match="corrupt: chunk 1 holds 5 bytes, 1024 expected"):
        storage.get(file_id).read()


def test_remove_incomplete_removes_orphan_chunks_and_superseded_versions(
    storage: GridFSStorage, database: Any
) -> None:
    kept = storage.create(b"kept " * 500)
    long_ago = datetime.now(timezone.utc) - timedelta(days=2)
    orphan = ObjectId.from_datetime(long_ago)
    database["files.chunks"].insert_one(
        {"_id": ObjectId.from_datetime(long_ago), "files_id": orphan, "n": 0, "data": b"x"}
    )
    recent_orphan = ObjectId()
    database["files.chunks"].insert_one({"files_id": recent_orphan, "n": 0, "data": b"y"})
    # A replace that crashed before removing the version it superseded.
    stale = ObjectId()
    database["files.files"].insert_one(
        {
            "_id": stale,
            "length": 0,
            "chunkSize": CHUNK,
            "uploadDate": long_ago - timedelta(1),
            "metadata": {"sa_depot_id": ObjectId(kept)},
        }
    )
    database["files.files"].update_one({"_id": ObjectId(kept)}, {"$set": {"uploadDate": long_ago}})

    removed = storage.remove_incomplete()

    assert sorted(removed) == sorted([str(orphan), str(stale)])
    assert database["files.chunks"].count_documents({"files_id": orphan}) == 0
    assert database["files.chunks"].count_documents({"files_id": recent_orphan}) == 1
    assert database["files.files"].count_documents({}) == 1
    assert storage.get(kept).read() == b"kept " * 500


# -- configuration and errors (no server needed) --------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_constructor_makes_no_network_call_and_a_down_server_is_reported() -> None:
    port = _closed_port()
    uri = f"mongodb://127.0.0.1:{port}/files?serverSelectionTimeoutMS=300"
    storage = GridFSStorage(uri)  # connecting would fail: nothing listens there
    for operation in (
        lambda: storage.create(b"x"),
        lambda: storage.get("5f43a1b2c3d4e5f6a7b8c9d0"),
        lambda: storage.list(),
        lambda: storage.delete("5f43a1b2c3d4e5f6a7b8c9d0"),
    ):
        with pytest.raises(StorageError, match="cannot reach the MongoDB server, is it running"):
            operation()
    with pytest.raises(StorageError, match=f"GridFS files.filedepot at 127.0.0.1:{port}"):
        storage.list()


def test_a_missing_pymongo_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pymongo" else real(name, *a)
    )
    with pytest.raises(ConfigurationError, match=r"pip install pymongo .*'\.\[gridfs\]'"):
        GridFSStorage("mongodb://localhost/db")


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("mongodb://localhost:27017", "names no database"),
        ("mongodb://localhost:notaport/db", "invalid MongoDB URI"),
        ("http://localhost/db", "invalid MongoDB URI"),
    ],
)
def test_bad_uris_are_configuration_errors(uri: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        GridFSStorage(uri)


def test_configured_by_name_with_filedepot_options() -> None:
    storage = DepotManager.configure(
        "mongo",
        {
            "depot.backend": "depot.io.gridfs.GridFSStorage",
            "depot.mongouri": "mongodb://127.0.0.1:27017/sa_depot_docs",
            "depot.collection": "attachments",
        },
    )
    assert isinstance(storage, GridFSStorage)
    assert storage.collection == "attachments"
    assert "'mongo'" in storage.description
