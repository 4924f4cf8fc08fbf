"""Fixtures of the S3 storage tests: a storage under a prefix of its own in the run's bucket,
and a log of the requests its client sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sa_depot.io.boto3 import S3Storage
from tests.s3server import SeaweedS3

MiB = 1024 * 1024


class RequestLog:
    """The S3 operations a client sends (retries included), with their HTTP headers."""

    def __init__(self, client: Any) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, event_name: str, **kwargs: Any) -> None:
        headers = {
            name: value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        self.sent.append((event_name.rsplit(".", 1)[-1], headers))

    @property
    def operations(self) -> list[str]:
        return [name for name, _ in self.sent]

    def clear(self) -> None:
        self.sent.clear()


def make_storage(server: SeaweedS3, bucket: str, **options: Any) -> S3Storage:
    options.setdefault("prefix", f"t-{uuid.uuid4().hex[:12]}/")
    return S3Storage(bucket, **server.storage_options(**options))


def remove_prefix(server: SeaweedS3, bucket: str, prefix: str) -> None:
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


@pytest.fixture
def s3(s3_server: SeaweedS3, s3_bucket: str) -> Iterator[S3Storage]:
    """An S3Storage with small multipart settings (5 MiB, S3's minimum part size)."""
    storage = make_storage(
        s3_server, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    yield storage
    remove_prefix(s3_server, s3_bucket, storage.prefix)


@pytest.fixture
def requests_log(s3: S3Storage) -> RequestLog:
    return RequestLog(s3.client)
