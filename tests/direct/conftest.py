"""Fixtures of the direct upload tests: an S3 storage (SeaweedFS) under a prefix of its own as
the default storage, a SQLite database, models whose fields take direct uploads, and the
configured DirectUploads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.direct import DirectUploads, UploadSlot
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.boto3 import S3Storage
from sa_depot.io.validation import ContentTypes, MaxSize
from sa_depot.manager import DepotManager
from tests.models import equip
from tests.s3.conftest import MiB, remove_prefix
from tests.s3server import SeaweedS3

SECRET = "direct-upload-test-secret-0123456789"


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "direct_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
    # limited: 1 MiB of text or PDF
    small: Mapped[UploadedFile | None] = mapped_column(
        UploadedFileField(validators=[MaxSize(MiB), ContentTypes("text/*", "application/pdf")])
    )


class Other(Base):
    __tablename__ = "direct_others"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())


def configure_s3(server: SeaweedS3, bucket: str, prefix: str) -> S3Storage:
    options = server.storage_options(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    storage = DepotManager.configure(
        "default",
        {
            "depot.backend": "sa_depot.io.boto3.S3Storage",
            "depot.bucket": bucket,
            "depot.prefix": prefix,
            **{f"depot.{key}": value for key, value in options.items()},
        },
    )
    assert isinstance(storage, S3Storage)
    return storage


def keys_under(storage: S3Storage) -> set[str]:
    """The file ids of the objects under the storage's prefix."""
    pages = storage.client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket, Prefix=storage.prefix
    )
    return {
        item["Key"][len(storage.prefix) :] for page in pages for item in page.get("Contents", [])
    }


def multipart_uploads(storage: S3Storage) -> list[str]:
    listed = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)
    return [u["Key"] for u in listed.get("Uploads", [])]


def put(slot: UploadSlot, body: bytes) -> requests.Response:
    """The browser's PUT of ``body`` to a PUT slot."""
    assert slot.url is not None
    return requests.put(slot.url, data=body, headers=slot.headers, timeout=30)


def post(slot: UploadSlot, body: bytes, filename: str = "upload.bin") -> requests.Response:
    """The browser's form POST of ``body`` to a POST slot."""
    assert slot.url is not None
    return requests.post(slot.url, data=slot.fields, files={"file": (filename, body)}, timeout=30)


@pytest.fixture(autouse=True)
def _equipped() -> None:
    equip(Base)  # other suites may have uninstalled the lifecycle since this module's import


@pytest.fixture
def s3_depot(s3_server: SeaweedS3, s3_bucket: str) -> Iterator[S3Storage]:
    prefix = f"direct-{os.urandom(6).hex()}/"
    yield configure_s3(s3_server, s3_bucket, prefix)
    remove_prefix(s3_server, s3_bucket, prefix)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'direct.sqlite'}")
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def uploads() -> Iterator[DirectUploads]:
    yield DirectUploads.configure(SECRET)
    DirectUploads.reset()


@pytest.fixture
def session(engine: sa.Engine, s3_depot: S3Storage) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def read(uploaded: Any) -> bytes:
    with uploaded.file as stored:
        data: bytes = stored.read()
    return data
