"""What is particular to each of GCS, Azure and Swift: configuration (filedepot's GCS
configuration unchanged, ini strings), no request in constructors, filedepot's GCS objects read,
the streamed upload paths and what they leave, errors naming the bucket or container."""

from __future__ import annotations

import io
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from sa_depot.exceptions import StorageError
from sa_depot.io.azure import AzureBlobStorage
from sa_depot.io.gcs import GCSStorage
from sa_depot.io.interfaces import FileStorage
from sa_depot.io.swift import SEGMENTS_DIR, SwiftStorage
from sa_depot.manager import DepotManager
from tests.cloud.conftest import Cloud, MiB
from tests.gcsserver import FakeGCS, TokenServer, service_account_info

ABSENT = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


@pytest.mark.parametrize(
    "make",
    [
        lambda: GCSStorage(bucket="media", endpoint_url="http://127.0.0.1:9", retry_timeout=0.5),
        lambda: AzureBlobStorage(
            "media",
            account_url="http://127.0.0.1:9/devstoreaccount1",
            credential="a2V5",
            max_attempts=1,
            connect_timeout=1,
        ),
        lambda: SwiftStorage(
            "media", auth_url="http://127.0.0.1:9/auth/v1.0", user="a:b", key="k", max_attempts=1
        ),
    ],
    ids=["gcs", "azure", "swift"],
)
def test_constructors_make_no_request_and_first_use_names_the_server(make: object) -> None:
    storage: FileStorage = make()  # type: ignore[operator] - nothing listens on port 9
    with pytest.raises(StorageError, match="cannot connect to the server") as raised:
        storage.exists(ABSENT)
    assert "media" in str(raised.value) and "127.0.0.1:9" in str(raised.value)


def test_a_missing_bucket_or_container_is_named(
    cloud: Cloud, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(cloud.server_fixture)
    storage = cloud.make(server, f"sa-depot-missing-{uuid.uuid4().hex[:8]}")
    for operation in (lambda: storage.get(ABSENT), lambda: storage.create(b"x")):
        with pytest.raises(StorageError, match="does not exist"):
            operation()


def test_streamed_uploads_read_back_and_replace_keeps_nothing_old(
    cloud: Cloud, cloud_storage: FileStorage
) -> None:
    """Content past the threshold takes the streamed path (temporary object, blocks or
    segments); a replace by a small file and a delete leave nothing of it behind."""
    data = os.urandom(3 * MiB + 17)
    file_id = cloud_storage.create(io.BytesIO(data), "big.bin")
    with cloud_storage.get(file_id) as stored:
        assert stored.read() == data and stored.content_length == len(data)
        assert stored.checksum is not None
        stored.seek(2 * MiB)
        assert stored.read(100) == data[2 * MiB : 2 * MiB + 100]
    cloud_storage.replace(file_id, b"small now")
    assert cloud.raw_contents(cloud_storage) == {cloud_storage.key(file_id)}  # type: ignore[attr-defined]
    cloud_storage.delete(file_id)
    assert cloud.raw_contents(cloud_storage) == set()


# -- GCS -------------------------------------------------------------------------------------
def test_a_filedepot_gcs_configuration_loads_unchanged(
    gcs_server: FakeGCS,
    gcs_bucket: str,
    gcs_token_server: TokenServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """filedepot's keys and backend path, credentials as a key file; the emulator is named by
    STORAGE_EMULATOR_HOST, which the Google library honours too."""
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(service_account_info(gcs_token_server.url)))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url)
    storage = DepotManager.configure(
        "media",
        {
            "depot.backend": "depot.io.gcs.GCSStorage",
            "depot.project_id": "sa-depot-tests",
            "depot.credentials": str(key_file),
            "depot.bucket": gcs_bucket,
            "depot.policy": "private",
            "depot.storage_class": "STANDARD",
            "depot.prefix": "filedepot-config/",
        },
    )
    assert isinstance(storage, GCSStorage)
    file_id = storage.create(b"configured as filedepot was", "f.txt")
    try:
        with DepotManager.get_file(f"media/{file_id}") as stored:
            assert stored.read() == b"configured as filedepot was"
        blob = storage.bucket.get_blob(storage.key(file_id))
        assert blob.storage_class == "STANDARD"
        assert blob.metadata["x-depot-content-type"] == "text/plain"  # what filedepot reads
    finally:
        storage.delete(file_id)


def test_objects_written_by_filedepot_are_read(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    """filedepot 0.12.0's layout: its percent-encoding, its timestamp, no checksum."""
    storage = GCSStorage(bucket=gcs_bucket, prefix="filedepot/", **gcs_server.storage_options())
    blob = storage.bucket.blob(storage.key(ABSENT))
    blob.metadata = {
        "x-depot-modified": "2019-05-06 07:08:09",
        "x-depot-filename": quote("résumé 1.pdf", safe="!#$&+-.^_`|~"),
        "x-depot-content-type": "application/pdf",
    }
    blob.content_disposition = "inline"
    blob.upload_from_string(b"%PDF-1.4 old", content_type="application/pdf")
    try:
        assert storage.list() == [ABSENT]
        with storage.get(ABSENT) as stored:
            assert stored.read() == b"%PDF-1.4 old"
            assert stored.filename == "résumé 1.pdf"
            assert stored.content_type == "application/pdf"
            assert stored.last_modified.isoformat() == "2019-05-06T07:08:09+00:00"
            assert stored.checksum is None and stored.content_length == 12
    finally:
        storage.delete(ABSENT)


def test_gcs_remove_incomplete_deletes_stale_temporary_objects(
    gcs_server: FakeGCS, gcs_bucket: str
) -> None:
    storage = GCSStorage(bucket=gcs_bucket, prefix="stale/", **gcs_server.storage_options())
    kept = storage.create(b"a file")
    stale = storage.bucket.blob(f"stale/.sa-depot-uploads/{ABSENT}.0123")
    stale.upload_from_string(b"left by a crash")
    assert storage.list() == [kept]
    assert storage.remove_incomplete(older_than=timedelta(days=1)) == []  # too young
    assert storage.remove_incomplete(older_than=timedelta(0)) == [stale.name]
    storage.delete(kept)


def test_gcs_credentials_errors_are_configuration_errors(tmp_path: Path) -> None:
    from sa_depot.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="cannot load service account credentials"):
        GCSStorage(bucket="media", credentials=str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="policy"):
        GCSStorage(bucket="media", policy="authenticated-read")


# -- Azure -----------------------------------------------------------------------------------
def test_azure_configured_with_account_url_and_key(
    azure_server: object, azure_container: str
) -> None:
    from tests.azureserver import ACCOUNT, ACCOUNT_KEY, Azurite

    assert isinstance(azure_server, Azurite)
    storage = DepotManager.configure(
        "blobs",
        {
            "depot.backend": "sa_depot.io.azure.AzureBlobStorage",
            "depot.container": azure_container,
            "depot.account_url": azure_server.account_url,
            "depot.credential": ACCOUNT_KEY,
            "depot.prefix": "key-config/",
            "depot.max_attempts": "1",
        },
    )
    assert isinstance(storage, AzureBlobStorage) and storage.account_name == ACCOUNT
    file_id = storage.create(b"with an account key", "k.txt")
    assert storage.get(file_id).read() == b"with an account key"
    storage.delete(file_id)
    wrong = AzureBlobStorage(
        azure_container, account_url=azure_server.account_url, credential="d3Jvbmc=",
        max_attempts=1,
    )  # fmt: skip
    with pytest.raises(StorageError, match="check the account key"):
        wrong.create(b"x")


# -- Swift -----------------------------------------------------------------------------------
def test_swift_remove_incomplete_deletes_segments_no_manifest_uses(
    swift_server: object, swift_container: str
) -> None:
    from tests.cloud.conftest import CLOUDS

    cloud_storage = CLOUDS["swift"].make(swift_server, swift_container, prefix="orphans/")
    assert isinstance(cloud_storage, SwiftStorage)
    file_id = cloud_storage.create(io.BytesIO(os.urandom(2 * MiB + 1)), "big.bin")
    orphan = f"{cloud_storage.prefix}{SEGMENTS_DIR}{ABSENT}/0123/000000"
    cloud_storage.connection.put_object(cloud_storage.container, orphan, b"left by a crash")
    assert cloud_storage.remove_incomplete(older_than=timedelta(days=1)) == []
    assert cloud_storage.remove_incomplete(older_than=timedelta(0)) == [orphan]
    with cloud_storage.get(file_id) as stored:  # the file's own segments are kept
        assert len(stored.read()) == 2 * MiB + 1
    cloud_storage.delete(file_id)


def test_swift_remove_incomplete_keeps_the_segments_of_keyed_files(
    swift_server: object, swift_container: str
) -> None:
    """A key holds '/': the sweep reads ``<id>/<upload>/<n>`` from the right."""
    from tests.cloud.conftest import CLOUDS

    cloud_storage = CLOUDS["swift"].make(swift_server, swift_container, prefix="keyed/")
    assert isinstance(cloud_storage, SwiftStorage)
    file_id = cloud_storage.create(
        io.BytesIO(os.urandom(2 * MiB + 1)), "big.bin", key="acme/{yyyy}/{id}{ext}"
    )
    orphan = f"{cloud_storage.prefix}{SEGMENTS_DIR}{file_id}/0123/000000"
    cloud_storage.connection.put_object(cloud_storage.container, orphan, b"left by a crash")
    assert cloud_storage.remove_incomplete(older_than=timedelta(0)) == [orphan]
    assert cloud_storage.list() == [file_id]
    with cloud_storage.get(file_id) as stored:  # the file's own segments are kept
        assert len(stored.read()) == 2 * MiB + 1
    cloud_storage.delete(file_id)


def test_swift_wrong_key_is_named(swift_server: object, swift_container: str) -> None:
    from tests.swiftserver import SwiftServer

    assert isinstance(swift_server, SwiftServer)
    storage = SwiftStorage(
        swift_container, **swift_server.storage_options(key="wrong", max_attempts=1)
    )
    with pytest.raises(StorageError, match="authentication failed: check user and key"):
        storage.create(b"x")
