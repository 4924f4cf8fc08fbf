"""copy_files between every pair of memory, local, S3 (SeaweedFS), GCS (fake-gcs-server), Azure
(Azurite), Swift and GridFS (mongomock)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import gridfs
import pytest

from sa_depot.io.boto3 import S3Storage
from sa_depot.io.copy import CopyProgress, copy_files
from sa_depot.io.gridfs import GridFSStorage
from sa_depot.io.interfaces import FileStorage
from sa_depot.io.local import LocalFileStorage
from sa_depot.io.memory import MemoryFileStorage
from tests.cloud.conftest import CLOUDS
from tests.gridfs.support import mongomock_database
from tests.s3server import SeaweedS3

REPO_ROOT = Path(__file__).resolve().parents[1]
KINDS = ["memory", "local", "s3", "gcs", "azure", "swift", "gridfs"]
PDF = b"%PDF-1.4\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], FileStorage]]:
    """Fresh, empty storages of any kind; S3 ones are cleaned up at the end."""
    made: list[FileStorage] = []

    def make(kind: str) -> FileStorage:
        name = uuid.uuid4().hex[:8]
        if kind == "memory":
            return MemoryFileStorage()
        if kind == "local":
            return LocalFileStorage(tmp_path / name, fsync=False)
        if kind == "gridfs":
            return GridFSStorage(mongomock_database(), chunk_size=64 * 1024)
        storage: FileStorage
        if kind == "s3":
            server: SeaweedS3 = request.getfixturevalue("s3_server")
            bucket: str = request.getfixturevalue("s3_bucket")
            storage = S3Storage(bucket, prefix=f"copy-{name}/", **server.storage_options())
        else:  # one of tests/cloud's stores
            cloud = CLOUDS[kind]
            space = request.getfixturevalue(
                {"gcs": "gcs_bucket", "azure": "azure_container", "swift": "swift_container"}[kind]
            )
            server = request.getfixturevalue(cloud.server_fixture)
            storage = cloud.make(server, space, prefix=f"copy-{name}/")
        made.append(storage)
        return storage

    yield make
    for storage in made:
        for file_id in storage.list():
            storage.delete(file_id)


def seed(storage: FileStorage) -> dict[str, bytes]:
    """Three files with UUID ids (which every storage can hold), written through a copy."""
    origin = MemoryFileStorage()
    contents = {
        origin.create(PDF + b"report", "résumé.pdf"): PDF + b"report",
        origin.create(b"", "empty.txt"): b"",
        origin.create(os.urandom(300_000), "big.bin", "application/x-big"): b"",
    }
    for file_id in contents:
        with origin.get(file_id) as stored:
            contents[file_id] = stored.read()
    report = copy_files(origin, storage)
    assert report.ok and sorted(report.copied) == sorted(contents)
    return contents


@pytest.mark.parametrize("destination_kind", KINDS)
@pytest.mark.parametrize("source_kind", KINDS)
def test_copy_keeps_ids_content_and_metadata_then_skips_on_a_second_run(
    make_storage: Callable[[str], FileStorage], source_kind: str, destination_kind: str
) -> None:
    source, destination = make_storage(source_kind), make_storage(destination_kind)
    contents = seed(source)
    events: list[CopyProgress] = []

    report = copy_files(source, destination, progress=events.append)

    assert report.ok and sorted(report.copied) == sorted(contents)
    assert report.bytes_copied == sum(len(data) for data in contents.values())
    assert sorted(destination.list()) == sorted(contents)
    for file_id, data in contents.items():
        original, copy = source.info(file_id), destination.info(file_id)
        with destination.get(file_id) as stored:
            assert stored.read() == data
        assert copy.checksum == original.checksum == sha256(data)
        assert (copy.filename, copy.content_type, copy.content_length) == (
            original.filename,
            original.content_type,
            original.content_length,
        )
        assert copy.last_modified == original.last_modified
    assert [(e.done, e.total, e.outcome) for e in events] == [
        (1, 3, "copied"),
        (2, 3, "copied"),
        (3, 3, "copied"),
    ]

    again = copy_files(source, destination)
    assert sorted(again.skipped) == sorted(contents) and again.copied == [] and again.ok


def test_last_modified_is_kept(make_storage: Callable[[str], FileStorage]) -> None:
    source, destination = make_storage("memory"), make_storage("local")
    file_id = source.create(b"old file")
    source._files[file_id][0].last_modified = datetime(2019, 5, 6, 7, 8, 9, tzinfo=timezone.utc)  # type: ignore[attr-defined]
    copy_files(source, destination)
    assert destination.info(file_id).last_modified == datetime(
        2019, 5, 6, 7, 8, 9, tzinfo=timezone.utc
    )


def test_an_interrupted_copy_resumes(
    make_storage: Callable[[str], FileStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = make_storage("memory"), make_storage("s3")
    contents = seed(source)
    ids = sorted(contents)
    real_write = destination._write
    calls = {"n": 0}

    def failing_write(content, *, replace):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("the network went away")
        return real_write(content, replace=replace)

    monkeypatch.setattr(destination, "_write", failing_write)
    first = copy_files(source, destination, ids)
    assert first.copied == [ids[0], ids[2]]
    assert list(first.failed) == [ids[1]] and "the network went away" in first.failed[ids[1]]
    assert sorted(destination.list()) == [ids[0], ids[2]]

    second = copy_files(source, destination, ids)
    assert (second.skipped, second.copied, second.failed) == ([ids[0], ids[2]], [ids[1]], {})


def test_a_different_copy_in_the_destination_is_overwritten(
    make_storage: Callable[[str], FileStorage],
) -> None:
    source, destination = make_storage("local"), make_storage("gridfs")
    contents = seed(source)
    file_id = next(iter(contents))
    destination.replace(source.get(file_id), b"stale content")

    report = copy_files(source, destination)

    assert file_id in report.copied
    assert destination.get(file_id).read() == contents[file_id]


def test_sources_without_checksums_are_hashed_and_skipped_when_identical(
    make_storage: Callable[[str], FileStorage],
) -> None:
    """Files written by filedepot (here with the gridfs package) carry no checksum."""
    source = make_storage("gridfs")
    assert isinstance(source, GridFSStorage)
    fs = gridfs.GridFS(source.database, collection=source.collection)
    ids = [str(fs.put(b"legacy %d" % n * 1000, filename=f"legacy{n}.txt")) for n in range(2)]
    assert source.info(ids[0]).checksum is None
    destination = make_storage("s3")  # accepts GridFS's ObjectId ids

    first = copy_files(source, destination)
    assert sorted(first.copied) == sorted(ids)
    assert destination.info(ids[0]).checksum == sha256(b"legacy 0" * 1000)

    second = copy_files(source, destination)
    assert sorted(second.skipped) == sorted(ids)


def test_ids_the_destination_cannot_hold_fail_clearly_and_the_rest_is_copied(
    make_storage: Callable[[str], FileStorage],
) -> None:
    source, destination = make_storage("gridfs"), make_storage("local")
    native = source.create(b"native GridFS id")  # an ObjectId: local storage takes UUIDs
    contents = seed(source)

    report = copy_files(source, destination)

    assert sorted(report.copied) == sorted(contents)
    assert list(report.failed) == [native]
    assert "invalid file id" in report.failed[native] and "UUID" in report.failed[native]
    assert not report.ok


def test_a_source_not_matching_its_checksum_is_not_copied(
    make_storage: Callable[[str], FileStorage],
) -> None:
    source, destination = make_storage("memory"), make_storage("local")
    file_id = source.create(b"original content")
    info, _ = source._files[file_id]  # type: ignore[attr-defined]
    source._files[file_id] = (info, b"bit rot content!")  # type: ignore[attr-defined]

    report = copy_files(source, destination)

    assert "does not match its checksum" in report.failed[file_id]
    assert destination.list() == []  # no corrupt copy left behind


def test_a_missing_source_file_is_reported(make_storage: Callable[[str], FileStorage]) -> None:
    source, destination = make_storage("memory"), make_storage("memory")
    kept = source.create(b"kept")
    absent = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

    report = copy_files(source, destination, [absent, kept])

    assert report.copied == [kept]
    assert "does not exist" in report.failed[absent]


def test_an_id_malformed_for_the_source_blames_the_source(
    make_storage: Callable[[str], FileStorage],
) -> None:
    source, destination = make_storage("memory"), make_storage("memory")
    source.storage_name, destination.storage_name = "source", "destination"

    report = copy_files(source, destination, ["nope"])

    assert "for storage 'source'" in report.failed["nope"]
    assert "'destination'" not in report.failed["nope"]


COPY_WORKER = """
import hashlib, json, resource, sys
from sa_depot.manager import DepotManager
from sa_depot.io.copy import copy_files
from sa_depot.testing.streams import GeneratedStream
source = DepotManager.from_config(json.loads(sys.argv[1]))
destination = DepotManager.from_config(json.loads(sys.argv[2]))
warm = source.create(b"warm-up" * 1000)
copy_files(source, destination, [warm])
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
stream = GeneratedStream(int(sys.argv[3]))
big = source.create(stream)
before_copy = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
report = copy_files(source, destination, [big])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"ok": report.ok, "failed": report.failed, "baseline": baseline,
    "before_copy": before_copy, "after": after, "expected": stream.sha256.hexdigest(),
    "copied": destination.info(big).checksum}))
"""


@pytest.mark.skipif(sys.platform == "darwin", reason="ru_maxrss is in bytes on macOS")
def test_copying_64_mib_from_s3_to_local_keeps_memory_bounded(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    prefix = f"copy-memory-{uuid.uuid4().hex[:8]}/"
    s3_config = {
        "depot.backend": "sa_depot.io.boto3.S3Storage",
        "depot.bucket": s3_bucket,
        "depot.prefix": prefix,
        **{f"depot.{k}": str(v) for k, v in s3_server.storage_options().items()},
    }
    local_config = {"depot.storage_path": str(tmp_path / "local"), "depot.fsync": "false"}
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            COPY_WORKER,
            json.dumps(s3_config),
            json.dumps(local_config),
            str(64 * 1024 * 1024),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=240,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    try:
        assert result["ok"], result["failed"]
        assert result["copied"] == result["expected"]
        # Upload (multipart, 8 MiB parts) and copy stay within a few part sizes.
        assert result["after"] - result["baseline"] < 40 * 1024 * 1024, result
    finally:
        storage = S3Storage(s3_bucket, prefix=prefix, **s3_server.storage_options())
        for file_id in storage.list():
            storage.delete(file_id)
