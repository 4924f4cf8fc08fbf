"""Direct uploads by presigned PUT to Google Cloud Storage (fake-gcs-server) and Azure Blob
Storage (Azurite): the staged object is attached, verified and follows the lifecycle. Azurite
checks the SAS (tampered, or used for another blob, it refuses); fake-gcs-server checks no
signature, so that part is left to real GCS. POST policies and multipart slots are S3's."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.direct import DirectUploads, UploadSlot
from sa_depot.exceptions import UploadRefused, ValidationFailed
from sa_depot.io.azure import AzureBlobStorage
from sa_depot.io.gcs import GCSStorage
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from tests.azureserver import Azurite
from tests.direct.conftest import Base, Document, read
from tests.gcsserver import FakeGCS, TokenServer, service_account_info


def _configure(storage: FileStorage) -> FileStorage:
    DepotManager._depots["default"] = storage
    storage.storage_name = "default"
    DepotManager.set_default("default")
    return storage


@pytest.fixture
def gcs_depot(
    gcs_server: FakeGCS, gcs_bucket: str, gcs_token_server: TokenServer
) -> Iterator[FileStorage]:
    storage = GCSStorage(
        credentials=service_account_info(gcs_token_server.url),
        bucket=gcs_bucket,
        prefix=f"direct-{uuid.uuid4().hex[:8]}/",
        endpoint_url=gcs_server.endpoint_url,
        retry_timeout=3,
    )
    yield _configure(storage)
    for file_id in storage.list():
        storage.delete(file_id)


@pytest.fixture
def azure_depot(azure_server: Azurite, azure_container: str) -> Iterator[FileStorage]:
    storage = AzureBlobStorage(
        azure_container, prefix=f"direct-{uuid.uuid4().hex[:8]}/", **azure_server.storage_options()
    )
    yield _configure(storage)
    for file_id in storage.list():
        storage.delete(file_id)


@pytest.fixture(params=["gcs", "azure"])
def cloud_depot(request: pytest.FixtureRequest) -> FileStorage:
    storage: FileStorage = request.getfixturevalue(f"{request.param}_depot")
    return storage


@pytest.fixture
def cloud_engine(tmp_path: Path, cloud_depot: FileStorage) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cloud.sqlite'}")
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def upload(slot: UploadSlot, body: bytes) -> requests.Response:
    assert slot.url is not None and slot.method == "PUT"
    return requests.put(slot.url, data=body, headers=slot.headers, timeout=30)


def test_a_presigned_put_is_attached_and_follows_the_lifecycle(
    cloud_engine: sa.Engine, cloud_depot: FileStorage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.small, filename="notes.txt", content_type="text/plain")
    assert upload(slot, b"straight to the cloud").status_code in {200, 201}
    with Session(cloud_engine) as session:
        doc = Document(small=slot.token)
        session.add(doc)
        session.commit()
        assert doc.small is not None and read(doc.small) == b"straight to the cloud"
        assert doc.small.filename == "notes.txt" and doc.small.content_type == "text/plain"
        kept = doc.small.file_id
        # a replacement rolled back stays staged for its token; a replay is refused
        other = uploads.presigned_put(Document.small, content_type="text/plain")
        upload(other, b"rolled back")
        doc.small = other.token
        session.flush()
        session.rollback()
        session.add(Document(small=slot.token))
        with pytest.raises(UploadRefused) as refused:
            session.flush()
        assert refused.value.reason == "replayed"
        session.rollback()
    assert set(cloud_depot.list()) == {kept, uploads.receive(other.token).file_id}


def test_the_validators_judge_the_uploaded_content(
    cloud_engine: sa.Engine, cloud_depot: FileStorage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.small, filename="a.txt", content_type="text/plain")
    image = io.BytesIO()
    Image.new("RGB", (4, 4)).save(image, "PNG")
    upload(slot, image.getvalue())  # not text, whatever it was called
    with Session(cloud_engine) as session:
        session.add(Document(small=slot.token))
        with pytest.raises(ValidationFailed):
            session.flush()
        session.rollback()
    assert list(cloud_depot.list()) == []


def test_azure_checks_the_sas(azure_depot: FileStorage, uploads: DirectUploads) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    assert slot.url is not None
    tampered = UploadSlot(slot.token, "PUT", slot.url.replace("sig=", "sig=A", 1), slot.headers)
    assert upload(tampered, b"x").status_code == 403
    file_id = uploads.receive(slot.token).file_id
    elsewhere = slot.url.replace(file_id, str(uuid.uuid4()))
    assert upload(UploadSlot(slot.token, "PUT", elsewhere, slot.headers), b"x").status_code == 403
    assert list(azure_depot.list()) == []


def test_post_and_multipart_slots_are_s3s(gcs_depot: FileStorage, uploads: DirectUploads) -> None:
    for make in (uploads.presigned_post, uploads.create_multipart):
        with pytest.raises(UploadRefused) as refused:
            make(Document.content, content_type="text/plain")
        assert refused.value.reason == "unsupported"
