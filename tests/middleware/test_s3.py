"""S3 files through the middleware, against a real S3 server (SeaweedFS).

* with ``public_url='presigned'`` the middleware redirects (307, no-store) to a presigned URL
  that the S3 server honours, while the object's plain URL is refused;
* with ``public_urls='proxy'``, or without a public URL, the bytes and ranges are streamed by
  the middleware through ranged GETs.
"""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import content
from tests.s3server import SeaweedS3

pytestmark = pytest.mark.s3

MakeMiddleware = Callable[..., DepotMiddleware]
DATA = content(300_000)
MakeS3 = Callable[..., FileStorage]


@pytest.fixture
def make_s3(s3_server: SeaweedS3, s3_bucket: str) -> MakeS3:
    def make(name: str, **options: Any) -> FileStorage:
        config = {
            "depot.backend": "sa_depot.io.boto3.S3Storage",
            "depot.bucket": s3_bucket,
            "depot.prefix": f"middleware-{uuid.uuid4().hex[:8]}/",
        }
        for key, value in s3_server.storage_options(**options).items():
            config[f"depot.{key}"] = value
        return DepotManager.configure(name, config)

    return make


def test_presigned_files_are_redirected_to_a_working_signed_url(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3, s3_server: SeaweedS3
) -> None:
    storage = make_s3("cloud", public_url="presigned", presigned_expires=600)
    file_id = storage.create(DATA, filename="data.bin", content_type="application/octet-stream")
    served.mount(make_middleware())
    response = served.get(f"/depot/cloud/{file_id}")
    assert response.status_code == 307
    assert response.headers["Cache-Control"] == "no-store"
    location = response.headers["Location"]
    assert location.startswith(s3_server.endpoint_url)
    assert "Signature" in location
    followed = requests.get(location, timeout=30)
    assert followed.status_code == 200
    assert followed.content == DATA
    # the object is private: its URL without the signature is refused by the S3 server
    unsigned = requests.get(location.split("?", 1)[0], timeout=30)
    assert unsigned.status_code == 403


def test_proxied_s3_files_stream_ranges_through_the_middleware(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3
) -> None:
    storage = make_s3("cloud", public_url="presigned")
    file_id = storage.create(DATA, filename="data.bin", content_type="application/octet-stream")
    served.mount(make_middleware(policies={"cloud": ServingPolicy(public_urls="proxy")}))
    url = f"/depot/cloud/{file_id}"
    whole = served.get(url)
    assert whole.status_code == 200
    assert whole.content == DATA
    partial = served.get(url, headers={"Range": "bytes=100000-100099"})
    assert partial.status_code == 206
    assert partial.content == DATA[100_000:100_100]
    suffix = served.get(url, headers={"Range": "bytes=-10"})
    assert suffix.content == DATA[-10:]


def test_s3_files_without_public_url_serve_multiple_ranges(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3
) -> None:
    storage = make_s3("cloud")
    file_id = storage.create(DATA, filename="data.bin", content_type="application/octet-stream")
    served.mount(make_middleware())
    response = served.get(f"/depot/cloud/{file_id}", headers={"Range": "bytes=0-9,200000-200009"})
    assert response.status_code == 206
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: "
        + response.headers["Content-Type"].encode()
        + b"\r\n\r\n"
        + response.content
    )
    payloads = [part.get_payload(decode=True) for part in message.iter_parts()]
    assert payloads == [DATA[:10], DATA[200_000:200_010]]
    head = served.head(f"/depot/cloud/{file_id}")
    assert head.headers["Content-Length"] == str(len(DATA))
    assert head.headers["ETag"] == served.get(f"/depot/cloud/{file_id}").headers["ETag"]
