"""GCS, Azure and Swift servers killed (SIGKILL) during an upload and during a read, and down
when a storage is first used.

Each test runs a server of its own, kills it at a chosen point, checks that the error is a
StorageError naming the bucket or container, the endpoint and the cause, then restarts the
server on the same data and checks that nothing partial became visible and nothing stored was
lost.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from typing import Any

import pytest

from sa_depot.exceptions import StorageError
from sa_depot.io.interfaces import FileStorage
from tests.cloud.conftest import Cloud, MiB
from tests.streams import KillsServerAt

CAUSES = ("cannot connect to the server", "connection", "Connection", "failed at byte")


def private(cloud: Cloud, request: pytest.FixtureRequest) -> tuple[Any, FileStorage]:
    """A server of this test's own, and a storage on a new bucket or container of it."""
    server = request.getfixturevalue(cloud.factory_fixture)()
    return server, cloud.make(server, cloud.new_space(server), prefix="files/")


def assert_names_storage_and_cause(cloud: Cloud, error: StorageError, storage: FileStorage) -> None:
    message = str(error)
    space, endpoint = cloud.names(storage)
    assert space in message and endpoint in message, message
    assert any(cause in message for cause in CAUSES), message


def test_server_killed_during_a_streamed_upload(
    cloud: Cloud, request: pytest.FixtureRequest
) -> None:
    server, storage = private(cloud, request)
    kept = storage.create(b"stored before the crash", "kept.txt")
    before = cloud.raw_contents(storage)

    with pytest.raises(StorageError) as raised:  # killed after two parts were sent
        storage.create(KillsServerAt(6 * MiB, at=2 * MiB + 100, server=server), "big.bin")
    assert_names_storage_and_cause(cloud, raised.value, storage)

    server.start()
    assert storage.list() == [kept]
    with storage.get(kept) as stored:
        assert stored.read() == b"stored before the crash"
    # Parts sent before the crash are no file; those that are objects are collectable.
    remove_incomplete = getattr(storage, "remove_incomplete", None)
    if remove_incomplete is not None:
        remove_incomplete(older_than=timedelta(0))
    assert cloud.raw_contents(storage) == before


def test_server_killed_during_a_one_request_upload(
    cloud: Cloud, request: pytest.FixtureRequest
) -> None:
    server, storage = private(cloud, request)
    before = cloud.raw_contents(storage)

    with pytest.raises(StorageError) as raised:
        storage.create(KillsServerAt(MiB // 2, at=MiB // 4, server=server), "small.bin")
    assert_names_storage_and_cause(cloud, raised.value, storage)

    server.start()
    assert storage.list() == []
    assert cloud.raw_contents(storage) == before


def test_server_killed_during_a_read(cloud: Cloud, request: pytest.FixtureRequest) -> None:
    server, storage = private(cloud, request)
    data = os.urandom(24 * MiB)
    file_id = storage.create(io.BytesIO(data), "big.bin")

    received = bytearray()
    with storage.get(file_id) as stored:
        received += stored.read(MiB)
        server.kill()
        with pytest.raises(StorageError) as raised:
            while chunk := stored.read(MiB):  # what the socket buffers held, then the error
                received += chunk
        assert_names_storage_and_cause(cloud, raised.value, storage)
        assert len(received) < len(data)
        assert bytes(received) == data[: len(received)]  # what was read was right

    server.start()
    with storage.get(file_id) as stored:
        assert stored.read() == data  # the stored file survived the crash intact


@pytest.mark.parametrize("operation", ["create", "get", "list"])
def test_a_server_down_at_the_start_is_reported(
    cloud: Cloud, request: pytest.FixtureRequest, operation: str
) -> None:
    server, storage = private(cloud, request)
    server.kill()
    fresh = cloud.make(server, cloud.names(storage)[0], prefix="files/")  # no request yet

    with pytest.raises(StorageError) as raised:
        if operation == "create":
            fresh.create(b"nowhere to go")
        elif operation == "get":
            fresh.get("1b4e28ba-2fa1-41d2-883f-0016d3cca427")
        else:
            fresh.list()
    assert_names_storage_and_cause(cloud, raised.value, fresh)
    assert "cannot connect to the server, is it running?" in str(raised.value)
