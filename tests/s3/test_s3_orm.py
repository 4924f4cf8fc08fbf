"""The ORM lifecycle with an S3 storage (SeaweedFS) on SQLite: commits keep files, rollbacks
and failed uploads leave nothing in the bucket, and a server killed in the middle of a
transaction leaves nothing the collector does not remove."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.collector import collect
from sa_depot.exceptions import StorageError
from sa_depot.io.boto3 import S3Storage
from sa_depot.manager import DepotManager
from tests.orm.conftest import Models, _fresh_lifecycle, make_models  # noqa: F401
from tests.s3.conftest import MiB, remove_prefix
from tests.s3server import SeaweedS3
from tests.streams import FailingStream, InputBroke


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


def everything(storage: S3Storage) -> tuple[set[str], list[str]]:
    """Object keys and multipart uploads under the storage's prefix: all it holds."""
    client = storage.client
    keys = {
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket, Prefix=storage.prefix
        )
        for item in page.get("Contents", [])
    }
    uploads = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)
    return keys, sorted(u["Key"] for u in uploads.get("Uploads", []))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'orm.sqlite'}")
    schema.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def models(engine: sa.Engine) -> Iterator[Models]:
    built = make_models()
    built.create(engine)
    yield built
    built.drop(engine)


@pytest.fixture
def s3_depot(s3_server: SeaweedS3, s3_bucket: str) -> Iterator[S3Storage]:
    prefix = f"orm-{os.urandom(6).hex()}/"
    yield configure_s3(s3_server, s3_bucket, prefix)
    remove_prefix(s3_server, s3_bucket, prefix)


def test_commit_rollback_and_savepoints(
    engine: sa.Engine, models: Models, s3_depot: S3Storage
) -> None:
    big = os.urandom(6 * MiB)  # a multipart upload
    with Session(engine) as session:
        kept = models.Document(name="kept", content=io.BytesIO(big))
        session.add(kept)
        session.commit()
        committed = everything(s3_depot)
        assert kept.content is not None
        with kept.content.file as stored:
            assert stored.read() == big

        session.add(models.Document(name="outer", content=b"outer"))
        session.flush()
        with_outer = everything(s3_depot)
        nested = session.begin_nested()
        session.add(models.Document(name="inner", content=b"inner"))
        session.flush()
        nested.rollback()
        assert everything(s3_depot) == with_outer  # only the savepoint's upload went
        session.rollback()

    assert everything(s3_depot) == committed  # nothing leaked
    assert len(committed[0]) == 1 and committed[1] == []


def test_a_failing_upload_rolls_the_transaction_back_with_nothing_leaked(
    engine: sa.Engine, models: Models, s3_depot: S3Storage
) -> None:
    before = everything(s3_depot)
    with Session(engine) as session:
        session.add(models.Document(name="first", content=b"uploaded first"))
        session.flush()
        with pytest.raises(InputBroke):
            session.add(models.Document(name="second", content=FailingStream(11 * MiB)))
            session.flush()
        session.rollback()
    assert everything(s3_depot) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(models.Document.__table__)).all() == []


def test_server_killed_in_a_transaction_leaves_nothing_after_collection(
    engine: sa.Engine, models: Models, seaweed_factory: Any
) -> None:
    server: SeaweedS3 = seaweed_factory()
    storage = configure_s3(server, server.new_bucket(), "files/")
    with Session(engine) as session:
        session.add(models.Document(name="committed", content=b"committed"))
        session.commit()
    committed = everything(storage)

    with Session(engine) as session:
        session.add(models.Document(name="orphan", content=b"uploaded, never committed"))
        session.flush()
        server.kill()
        with pytest.raises(StorageError) as raised:
            session.add(models.Document(name="failed", content=b"cannot be stored"))
            session.flush()
        assert "cannot connect to the server" in str(raised.value)
        session.rollback()  # cannot remove the orphan: the server is down

    server.start()
    assert len(everything(storage)[0]) == 2  # the orphan, left for the collector
    report = collect(engine, models.Base, grace=timedelta(0))
    assert report.errors == []
    assert everything(storage) == committed
    with Session(engine) as session:
        row = session.scalars(sa.select(models.Document)).one()
        assert row.content is not None
        with row.content.file as stored:
            assert stored.read() == b"committed"
