"""URLs of descriptors on an S3 storage that presigns them: nothing that expires is saved in
the row; ``url`` and the thumbnails' ``*_url`` attributes are signed afresh at each access, so
a row read back after the first URL expired still gives a working link."""

from __future__ import annotations

import gc
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sa_depot.fields.filters.thumbnails import WithThumbnailFilter
from sa_depot.fields.specialized.image import UploadedImageWithThumb
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.boto3 import S3Storage
from sa_depot.manager import DepotManager
from sa_depot.orm.records import remove_abandoned
from tests.s3.conftest import remove_prefix
from tests.s3server import SeaweedS3

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture
def presigned(s3_server: SeaweedS3, s3_bucket: str) -> Iterator[S3Storage]:
    """The default storage: S3, presigning URLs valid for one second."""
    prefix = f"t-{uuid.uuid4().hex[:12]}/"
    options = s3_server.storage_options(bucket=s3_bucket, prefix=prefix)
    storage = DepotManager.configure(
        "default",
        {
            "depot.backend": "sa_depot.io.boto3.S3Storage",
            **{f"depot.{key}": value for key, value in options.items()},
            "depot.public_url": "presigned",
            "depot.presigned_expires": 1,
        },
    )
    assert isinstance(storage, S3Storage)
    yield storage
    gc.collect()  # uploads no row holds: removed while the storage is still configured
    remove_abandoned()
    remove_prefix(s3_server, s3_bucket, prefix)


def png() -> bytes:
    output = io.BytesIO()
    PIL.new("RGB", (40, 30), (200, 10, 10)).save(output, "PNG")
    return output.getvalue()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def signed_at(url: str) -> str:
    return parse_qs(urlsplit(url).query)["X-Amz-Date"][0]


def reloaded(uploaded: UploadedFile, kind: type[UploadedFile] = UploadedFile) -> Any:
    """The descriptor as a row gives it back: through its JSON form."""
    return kind(json.loads(json.dumps(dict(uploaded))))


def test_url_is_presigned_afresh_and_works_after_the_first_one_expired(
    presigned: S3Storage,
) -> None:
    uploaded = UploadedFile(b"hello")
    assert uploaded["_public_url"] is None  # nothing that expires goes into the row
    row = reloaded(uploaded)
    first = row.url
    assert status(first) == 200
    time.sleep(2)
    assert status(first) == 403  # expired: a URL saved in the row would stay broken
    fresh = row.url
    assert signed_at(fresh) != signed_at(first)
    assert status(fresh) == 200
    assert presigned.public_url(row.file_id) is not None  # the contract's method


def test_thumbnail_urls_are_presigned_afresh(presigned: S3Storage) -> None:
    filtered = UploadedFile(png(), filters=[WithThumbnailFilter((16, 16))])
    with_thumb = UploadedImageWithThumb(png())
    assert filtered["thumb_16x16_url"] is None
    assert with_thumb["_thumb_public_url"] is None
    rows = [
        (reloaded(filtered), "thumb_16x16"),
        (reloaded(with_thumb, UploadedImageWithThumb), "thumb"),
    ]
    firsts = [getattr(row, f"{key}_url") for row, key in rows]
    time.sleep(2)
    for (row, key), first in zip(rows, firsts, strict=True):
        fresh = getattr(row, f"{key}_url")
        assert row[f"{key}_id"] in fresh  # the thumbnail's object, not the original's
        assert signed_at(fresh) != signed_at(first)
        assert status(first) == 403
        assert status(fresh) == 200
