"""Abandoned direct uploads: the collector removes staged objects no row took and aborts
multipart uploads left unfinished (their parts go with them), once they are older than the
grace period; younger ones and attached ones stay."""

from __future__ import annotations

import time
from datetime import timedelta

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.collector import collect
from sa_depot.direct import DirectUploads
from sa_depot.io.boto3 import S3Storage
from tests.direct.conftest import Base, Document, keys_under, multipart_uploads, put, read
from tests.s3.conftest import MiB


def parts_of(storage: S3Storage, file_id: str, upload_id: str) -> int:
    listed = storage.client.list_parts(
        Bucket=storage.bucket, Key=storage.key(file_id), UploadId=upload_id
    )
    return len(listed.get("Parts", []))


def test_the_collector_removes_abandoned_uploads_after_the_grace_period(
    session: Session, engine: sa.Engine, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    kept = uploads.presigned_put(Document.content, content_type="text/plain")
    put(kept, b"attached")
    doc = Document(content=kept.token)
    session.add(doc)
    session.commit()
    # staged and never attached
    staged = uploads.presigned_put(Document.content, content_type="text/plain")
    put(staged, b"abandoned after the upload")
    staged_id = uploads.receive(staged.token).file_id
    # a multipart upload abandoned halfway: one part of two
    halfway = uploads.create_multipart(Document.content, filename="half.bin")
    assert halfway.upload_id is not None
    halfway_id = uploads.receive(halfway.token).file_id
    signed = uploads.sign_part(halfway.token, halfway.upload_id, 1)
    assert requests.put(signed["url"], data=b"p" * (5 * MiB), timeout=30).status_code == 200
    assert parts_of(s3_depot, halfway_id, halfway.upload_id) == 1
    assert doc.content is not None
    assert keys_under(s3_depot) == {doc.content.file_id, staged_id}
    assert multipart_uploads(s3_depot) == [s3_depot.key(halfway_id)]

    young = collect(engine, Base.metadata, grace=timedelta(hours=1))
    assert young.orphans == [] and young.incomplete == []
    assert young.too_young == [f"default/{staged_id}"]
    assert keys_under(s3_depot) == {doc.content.file_id, staged_id}
    assert multipart_uploads(s3_depot) == [s3_depot.key(halfway_id)]

    time.sleep(1.5)  # S3 times have a resolution of a second
    report = collect(engine, Base.metadata, grace=timedelta(0))
    assert report.orphans == [f"default/{staged_id}"]
    assert s3_depot.key(halfway_id) in report.incomplete
    assert keys_under(s3_depot) == {doc.content.file_id}
    assert multipart_uploads(s3_depot) == []
    assert read(doc.content) == b"attached"
    # the abandoned tokens attach nothing now
    session.add(Document(content=staged.token))
    try:
        session.flush()
    except Exception as exc:  # noqa: BLE001 - asserted just below
        assert getattr(exc, "reason", None) == "not staged"
    else:
        raise AssertionError("a token whose object the collector removed was accepted")
    session.rollback()
