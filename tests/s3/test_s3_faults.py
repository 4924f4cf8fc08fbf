"""An S3 server killed (SIGKILL) during an upload and during a read.

Each test runs a SeaweedFS of its own, kills it at a chosen point, checks the exception names
the storage and the cause, then restarts it on the same data and checks that nothing partial
became visible.
"""

from __future__ import annotations

import io
import os
import re
from datetime import timedelta
from typing import Any

import pytest

from sa_depot.exceptions import StorageError
from sa_depot.io.boto3 import S3Storage
from tests.s3.conftest import MiB
from tests.s3server import SeaweedS3
from tests.streams import GeneratedStream, KillsServerAt


def private_storage(server: SeaweedS3) -> S3Storage:
    bucket = server.new_bucket()
    return S3Storage(
        bucket,
        prefix="files/",
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        **server.storage_options(connect_timeout=1.0, read_timeout=5.0, max_attempts=2),
    )


def everything_under(storage: S3Storage) -> tuple[set[str], list[str]]:
    """(object keys, keys of multipart uploads in progress) under the storage's prefix."""
    client = storage.client
    keys = {
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket, Prefix=storage.prefix
        )
        for item in page.get("Contents", [])
    }
    uploads = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)
    return keys, [u["Key"] for u in uploads.get("Uploads", [])]


def assert_names_storage_and_cause(error: StorageError, storage: S3Storage) -> None:
    message = str(error)
    assert storage.bucket in message and storage.endpoint_url in message  # type: ignore[operator]
    assert "cannot connect to the server, is it running" in message or ("connection" in message), (
        message
    )


def test_server_killed_during_a_multipart_upload(seaweed_factory: Any) -> None:
    server: SeaweedS3 = seaweed_factory()
    storage = private_storage(server)
    kept = storage.create(b"committed before the crash", "kept.txt")
    before = everything_under(storage)

    with pytest.raises(StorageError) as raised:  # killed after the first part was sent
        storage.create(KillsServerAt(16 * MiB, at=7 * MiB, server=server), "big.bin")
    assert_names_storage_and_cause(raised.value, storage)
    # parts go two at a time: the one that met the dead server is named
    assert re.search(r"upload part [12]\b", str(raised.value))

    server.start()
    assert storage.list() == [kept]
    keys, uploads = everything_under(storage)
    assert keys == before[0]  # no partial object, not even a temporary one
    # The upload could not be aborted while the server was down: invisible, and collectable.
    assert storage.remove_incomplete(older_than=timedelta(0)) == uploads
    assert everything_under(storage) == before
    with storage.get(kept) as stored:
        assert stored.read() == b"committed before the crash"


def test_server_killed_during_a_single_request_upload(seaweed_factory: Any) -> None:
    server: SeaweedS3 = seaweed_factory()
    storage = private_storage(server)
    before = everything_under(storage)

    with pytest.raises(StorageError) as raised:
        storage.create(KillsServerAt(3 * MiB, at=1 * MiB, server=server), "small.bin")
    assert_names_storage_and_cause(raised.value, storage)

    server.start()
    assert storage.list() == []
    assert everything_under(storage) == before


def test_server_killed_between_the_upload_and_its_copy_into_place(
    seaweed_factory: Any,
) -> None:
    server: SeaweedS3 = seaweed_factory()
    storage = private_storage(server)

    def kill(**kwargs: Any) -> None:
        server.kill()

    storage.client.meta.events.register("before-send.s3.CopyObject", kill)
    with pytest.raises(StorageError) as raised:
        # content read once only goes through a temporary key (rereadable content does not)
        storage.create(GeneratedStream(11 * MiB), "big.bin")
    assert_names_storage_and_cause(raised.value, storage)
    assert "copy the uploaded object into place" in str(raised.value)
    storage.client.meta.events.unregister("before-send.s3.CopyObject", kill)

    server.start()
    assert storage.list() == []  # the completed temporary object is no file
    keys, _ = everything_under(storage)
    assert len(keys) == 1 and ".sa-depot-uploads/" in keys.pop()
    storage.remove_incomplete(older_than=timedelta(0))
    assert everything_under(storage) == (set(), [])


def test_server_killed_during_a_read(seaweed_factory: Any) -> None:
    server: SeaweedS3 = seaweed_factory()
    storage = private_storage(server)
    data = os.urandom(40 * MiB)
    file_id = storage.create(io.BytesIO(data), "big.bin")

    received = bytearray()
    with storage.get(file_id) as stored:
        received += stored.read(MiB)
        server.kill()
        with pytest.raises(StorageError) as raised:
            while chunk := stored.read(MiB):  # what the socket buffers held, then the error
                received += chunk
        assert f"reading file {file_id!r}" in str(raised.value) or (
            "cannot connect" in str(raised.value)
        )
        assert storage.bucket in str(raised.value)
        assert len(received) < len(data)
        assert bytes(received) == data[: len(received)]  # what was read was right

        # Seeking now needs a new request, which fails clearly too.
        stored.seek(len(data) // 2)
        with pytest.raises(StorageError, match="cannot connect to the server"):
            stored.read(10)

    server.start()
    with storage.get(file_id) as stored:
        assert stored.read() == data  # the stored file survived the crash intact
