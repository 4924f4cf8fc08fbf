"""Readable keys in a bucket: the object names show the key, and the collector sweeps keyed
orphans that sa_depot wrote but never another program's objects under the same prefix."""

from __future__ import annotations

import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from sa_depot.collector import collect
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.io.boto3 import S3Storage
from sa_depot.manager import DepotManager
from tests.s3server import SeaweedS3

UUID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
PREFIX = f"keys-{uuid.uuid4().hex[:12]}/"


def test_keyed_objects_and_foreign_nested_objects(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    options = {f"depot.{k}": v for k, v in s3_server.storage_options(prefix=PREFIX).items()}
    s3 = DepotManager.configure(
        "bucket",
        {"depot.backend": "sa_depot.io.boto3.S3Storage", "depot.bucket": s3_bucket, **options},
    )
    assert isinstance(s3, S3Storage)
    file_id = s3.create(
        b"keyed", "a.pdf", key="{tenant}/{yyyy}/{id}{ext}", key_values={"tenant": "acme"}
    )
    client = s3_server.client()
    body = client.get_object(Bucket=s3_bucket, Key=s3.prefix + file_id)["Body"].read()
    assert body == b"keyed"  # the object is named by the key itself
    foreign = f"thumbs/{UUID}.jpg"  # another program's object that looks like a key
    client.put_object(Bucket=s3_bucket, Key=s3.prefix + foreign, Body=b"not ours")
    assert sorted(s3.list()) == sorted([file_id, foreign])

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    metadata = sa.MetaData()  # a file column whose rows reference nothing
    sa.Table(
        "documents",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("content", UploadedFileField(upload_storage="bucket")),
    )
    metadata.create_all(engine)
    report = collect(
        engine,
        metadata,
        storages=["bucket"],
        now=datetime.now(timezone.utc) + timedelta(days=2),
    )
    assert report.orphans == [f"bucket/{file_id}"]
    assert s3.list() == [foreign]
    client.delete_object(Bucket=s3_bucket, Key=s3.prefix + foreign)


def test_presigned_urls_of_readable_keys_serve_the_file(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    options = s3_server.storage_options(prefix=f"keys-{uuid.uuid4().hex[:12]}/")
    s3 = S3Storage(s3_bucket, public_url="presigned", **options)
    file_id = s3.create(
        b"keyed and signed", "Résumé 100% final+1.txt", key="Société {tenant}/{id}/{filename}",
        key_values={"tenant": "a&b"},
    )  # fmt: skip
    url = s3.public_url(file_id)
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"keyed and signed"
    s3.delete(file_id)
