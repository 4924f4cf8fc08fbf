"""What the GCS, Azure and Swift tests share: one :class:`Cloud` adapter per store, so that the
fault, URL and copy tests are written once and run on all three real servers.

``cloud`` is parametrised over the three; ``cloud_storage`` is a storage of that kind on the
run's server (small upload thresholds and parts, so that a few MiB take the streamed path),
under a prefix of its own, emptied afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sa_depot.io.interfaces import FileStorage
from tests.azureserver import Azurite, azure_raw_contents
from tests.gcsserver import FakeGCS, gcs_raw_contents
from tests.swiftserver import SwiftServer, swift_raw_contents

MiB = 1024 * 1024


@dataclass(frozen=True)
class Cloud:
    """How the tests drive one kind of store."""

    name: str
    #: The session fixture of the run's server, and of a private (killable) one.
    server_fixture: str
    factory_fixture: str
    #: A storage on a server and a fresh bucket or container of it.
    make: Callable[..., FileStorage]
    #: A new bucket or container on a server.
    new_space: Callable[[Any], str]
    raw_contents: Callable[[FileStorage], set[str]]
    #: What error messages must name: the bucket or container, and the endpoint.
    names: Callable[[FileStorage], tuple[str, str]]


def _gcs(server: FakeGCS, space: str, **options: Any) -> FileStorage:
    from sa_depot.io.gcs import GCSStorage

    options.setdefault("upload_threshold", 1 * MiB)
    options.setdefault("upload_chunk_size", 1 * MiB)
    return GCSStorage(bucket=space, **server.storage_options(**options))


def _azure(server: Azurite, space: str, **options: Any) -> FileStorage:
    from sa_depot.io.azure import AzureBlobStorage

    options.setdefault("upload_threshold", 1 * MiB)
    options.setdefault("block_size", 1 * MiB)
    return AzureBlobStorage(space, **server.storage_options(**options))


def _swift(server: SwiftServer, space: str, **options: Any) -> FileStorage:
    from sa_depot.io.swift import SwiftStorage

    options.setdefault("upload_threshold", 1 * MiB)
    options.setdefault("segment_size", 1 * MiB)
    return SwiftStorage(space, **server.storage_options(**options))


def _names(storage: Any) -> tuple[str, str]:
    space = getattr(storage, "bucket_name", None) or storage.container
    endpoint = (
        getattr(storage, "endpoint_url", None)
        or getattr(storage, "account_url", None)
        or storage.auth_url
    )
    return space, endpoint


CLOUDS = {
    "gcs": Cloud(
        "gcs", "gcs_server", "gcs_factory", _gcs, lambda s: s.new_bucket(), gcs_raw_contents, _names
    ),
    "azure": Cloud(
        "azure",
        "azure_server",
        "azurite_factory",
        _azure,
        lambda s: s.new_container(),
        azure_raw_contents,
        _names,
    ),
    "swift": Cloud(
        "swift",
        "swift_server",
        "swift_factory",
        _swift,
        lambda s: s.new_container(),
        swift_raw_contents,
        _names,
    ),
}


@pytest.fixture(params=list(CLOUDS))
def cloud(request: pytest.FixtureRequest) -> Cloud:
    return CLOUDS[request.param]


@pytest.fixture
def cloud_storage(cloud: Cloud, request: pytest.FixtureRequest) -> Iterator[FileStorage]:
    server = request.getfixturevalue(cloud.server_fixture)
    space = request.getfixturevalue(
        {"gcs": "gcs_bucket", "azure": "azure_container", "swift": "swift_container"}[cloud.name]
    )
    storage = cloud.make(server, space, prefix=f"t-{uuid.uuid4().hex[:12]}/")
    yield storage
    for file_id in storage.list():
        storage.delete(file_id)
