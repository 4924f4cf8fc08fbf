"""S3 files through the middleware, against a real S3 server (SeaweedFS).

* with ``public_url='presigned'`` the middleware redirects (307, no-store) to a presigned URL
  that the S3 server honours, while the object's plain URL is refused;
* the S3 server answers that URL with the filename, type and disposition a proxied response
  has, and so does a URL without overrides (the object's own headers);
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
from werkzeug.http import parse_options_header
from werkzeug.test import Client

from sa_depot.io.boto3 import S3Storage
from sa_depot.io.filenames import normalize_filename
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import DOWNLOADS, SHOWN_INLINE, content
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


def download_headers(response: Any) -> tuple[str, str]:
    return response.headers["Content-Type"], response.headers["Content-Disposition"]


def test_every_download_path_names_and_types_the_file_alike(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3
) -> None:
    """Proxied, redirected to a presigned URL, or fetched from the object's own URL: the S3
    server's answer carries the same filename (RFC 6266), type and disposition decision."""
    storage = make_s3("cloud", public_url="presigned", presigned_expires=600)
    served.mount(make_middleware())
    proxying = Client(DepotMiddleware(policy=ServingPolicy(public_urls="proxy")))
    for filename, content_type in DOWNLOADS:
        file_id = storage.create(b"payload", filename=filename, content_type=content_type)
        proxied = proxying.get(f"/depot/cloud/{file_id}")
        assert proxied.status_code == 200 and proxied.data == b"payload"
        expected = download_headers(proxied)
        redirect = served.get(f"/depot/cloud/{file_id}")
        assert redirect.status_code == 307, filename
        followed = requests.get(redirect.headers["Location"], timeout=30)
        assert followed.status_code == 200 and followed.content == b"payload"
        assert download_headers(followed) == expected, filename
        # what an unsigned public URL or UploadedFile.url serves: the object's own headers
        own_url = storage.public_url(file_id)
        assert own_url is not None
        assert download_headers(requests.get(own_url, timeout=30)) == expected, filename

        disposition, params = parse_options_header(expected[1])
        # filename* decoded, as browsers do: the name as stored (normalised: NFC)
        assert params["filename"] == normalize_filename(filename), filename
        fallback = expected[1].split('filename="', 1)[1].split('"', 1)[0]
        assert fallback.isascii() and fallback.isprintable(), filename
        inline = content_type.split(";")[0] in SHOWN_INLINE
        assert disposition == ("inline" if inline else "attachment"), filename
        assert expected[0] == content_type


def test_a_policy_with_other_inline_types_still_redirects_with_its_own_decision(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3
) -> None:
    storage = make_s3("cloud", public_url="presigned")
    file_id = storage.create(b"%PDF-1.7", filename="Résumé.pdf", content_type="application/pdf")
    served.mount(make_middleware(policy=ServingPolicy(inline_types=frozenset())))
    location = served.get(f"/depot/cloud/{file_id}").headers["Location"]
    followed = requests.get(location, timeout=30)
    assert followed.headers["Content-Disposition"] == (
        "attachment; filename=\"Resume.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"
    )


def test_a_public_base_url_is_used_only_for_objects_sending_the_right_headers(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3, s3_server: SeaweedS3
) -> None:
    """An unsigned URL cannot carry overrides: the middleware redirects to it only when the
    object itself was stored with the headers the download needs, and proxies otherwise."""
    base = "https://cdn.example.com/media"
    storage = make_s3("public", public_url=base, policy="public-read")
    assert isinstance(storage, S3Storage)
    current = storage.create(b"<svg/>", filename="logo.svg", content_type="image/svg+xml")
    legacy = storage.create(b"<svg/>", filename="logo.svg", content_type="image/svg+xml")
    # an object written without a Content-Disposition (by filedepot, or an older sa_depot)
    s3_server.client().copy_object(
        Bucket=storage.bucket,
        Key=storage.key(legacy),
        CopySource={"Bucket": storage.bucket, "Key": storage.key(legacy)},
        MetadataDirective="REPLACE",
        ContentType="image/svg+xml",
        Metadata={"x-depot-filename": "logo.svg"},
    )
    served.mount(make_middleware())
    redirected = served.get(f"/depot/public/{current}")
    assert redirected.status_code == 307
    assert redirected.headers["Location"] == f"{base}/{storage.key(current)}"
    proxied = served.get(f"/depot/public/{legacy}")
    assert proxied.status_code == 200 and proxied.content == b"<svg/>"
    assert proxied.headers["Content-Disposition"] == 'attachment; filename="logo.svg"'
    # a policy showing SVG inline wants other headers than the object has: proxied too
    served.mount(make_middleware(policy=ServingPolicy(inline_types=frozenset({"image/svg+xml"}))))
    assert served.get(f"/depot/public/{current}").status_code == 200


@pytest.mark.parametrize("range_header", ["bytes=0-", "bytes=0-0", "bytes=0-1023", "bytes=-5"])
def test_an_empty_s3_file_ignores_range(
    served: Served, make_middleware: MakeMiddleware, make_s3: MakeS3, range_header: str
) -> None:
    storage = make_s3("cloud")
    file_id = storage.create(b"", filename="empty.log")
    served.mount(make_middleware())
    for method in ("GET", "HEAD"):
        response = served.request(
            method, f"/depot/cloud/{file_id}", headers={"Range": range_header}
        )
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["Content-Length"] == "0"
