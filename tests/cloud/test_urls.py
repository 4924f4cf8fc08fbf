"""Signed URLs of GCS (V4), Azure (SAS) and Swift (TempURL), fetched from the real servers:
they serve the file, carry the requested response headers where the server honours them, and
are refused when tampered with where the server checks signatures (Azurite, Swift; fake-gcs-server
checks none)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sa_depot.exceptions import ConfigurationError
from sa_depot.io.azure import AzureBlobStorage
from sa_depot.io.gcs import GCSStorage
from sa_depot.io.interfaces import ResponseOverrides
from sa_depot.io.swift import SwiftStorage
from tests.azureserver import Azurite
from tests.gcsserver import FakeGCS, TokenServer, service_account_info
from tests.swiftserver import SwiftServer

DISPOSITION = "attachment; filename=\"Resume.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"
OVERRIDES = ResponseOverrides("application/octet-stream", DISPOSITION)


def _empty(storage: object) -> None:
    for file_id in storage.list():  # type: ignore[attr-defined]
        storage.delete(file_id)  # type: ignore[attr-defined]


@pytest.fixture
def gcs_signed(
    gcs_server: FakeGCS, gcs_bucket: str, gcs_token_server: TokenServer
) -> Iterator[GCSStorage]:
    """Service account credentials (their tokens from the local token endpoint) that sign."""
    storage = GCSStorage(
        credentials=service_account_info(gcs_token_server.url),
        bucket=gcs_bucket,
        prefix=f"urls-{uuid.uuid4().hex[:8]}/",
        public_url="signed",
        endpoint_url=gcs_server.endpoint_url,
        retry_timeout=3,
    )
    yield storage
    _empty(storage)


def test_gcs_v4_signed_url_serves_the_file_and_carries_the_overrides(
    gcs_signed: GCSStorage,
) -> None:
    file_id = gcs_signed.create(b"%PDF-1.4 signed", "résumé.pdf")  # with a key's token
    url = gcs_signed.public_url(file_id, response=OVERRIDES)
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["3600"]
    assert query["response-content-disposition"] == [DISPOSITION]
    assert query["response-content-type"] == ["application/octet-stream"]
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"%PDF-1.4 signed"
    # fake-gcs-server ignores the overrides and checks no signature: nothing more to observe.
    with gcs_signed.get(file_id) as stored:
        assert stored.public_url is not None and "X-Goog-Signature" in stored.public_url


def test_gcs_public_url_options() -> None:
    with pytest.raises(ConfigurationError, match="unsigned links to private objects"):
        GCSStorage(bucket="media", public_url="https://cdn.example.com")
    public = GCSStorage(
        bucket="media",
        policy="public-read",
        public_url="https://cdn.example.com/",
        endpoint_url="http://127.0.0.1:9",
    )
    file_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert public.public_url(file_id) == f"https://cdn.example.com/{file_id}"
    assert public.public_url(file_id, response=OVERRIDES) is None  # cannot carry them
    assert GCSStorage(bucket="media", endpoint_url="http://127.0.0.1:9").public_url(file_id) is None


@pytest.fixture
def azure_signed(azure_server: Azurite, azure_container: str) -> Iterator[AzureBlobStorage]:
    storage = AzureBlobStorage(
        azure_container,
        prefix=f"urls-{uuid.uuid4().hex[:8]}/",
        public_url="signed",
        **azure_server.storage_options(),
    )
    yield storage
    _empty(storage)


def test_azure_sas_serves_the_file_with_the_overrides_and_is_checked(
    azure_signed: AzureBlobStorage,
) -> None:
    file_id = azure_signed.create(b"<html>risky</html>", "page.html", "text/html")

    plain = requests.get(azure_signed.public_url(file_id) or "", timeout=10)
    assert plain.status_code == 200 and plain.headers["Content-Type"] == "text/html"

    url = azure_signed.public_url(file_id, response=OVERRIDES)
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"<html>risky</html>"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == DISPOSITION

    tampered = url.replace("sig=", "sig=A", 1)
    assert requests.get(tampered, timeout=10).status_code == 403
    other_blob = url.replace(file_id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    assert requests.get(other_blob, timeout=10).status_code == 403  # signed for one blob


def test_azure_signed_urls_need_the_account_key() -> None:
    with pytest.raises(ConfigurationError, match="account key"):
        AzureBlobStorage(
            "media",
            account_url="https://acct.blob.core.windows.net",
            credential="?sv=2024&sig=abc",
            public_url="signed",
        )


@pytest.fixture
def swift_signed(swift_server: SwiftServer, swift_container: str) -> Iterator[SwiftStorage]:
    storage = SwiftStorage(
        swift_container,
        prefix=f"urls-{uuid.uuid4().hex[:8]}/é/",  # a TempURL signs the raw path
        public_url="signed",
        **swift_server.storage_options(),
    )
    yield storage
    _empty(storage)


def test_swift_temp_url_serves_the_file_with_the_disposition_and_is_checked(
    swift_signed: SwiftStorage,
) -> None:
    file_id = swift_signed.create(b"%PDF-1.4 temp", "résumé.pdf", "application/pdf")
    with swift_signed.get(file_id) as stored:
        same_type = ResponseOverrides("application/pdf", DISPOSITION)
        url = swift_signed.public_url(stored, response=same_type)
        other_type = swift_signed.public_url(stored, response=OVERRIDES)
    assert other_type is None  # a TempURL cannot change the type: the download is proxied
    assert swift_signed.public_url(file_id, response=same_type) is None  # type unknown: no I/O
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"%PDF-1.4 temp"
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9.pdf" in response.headers["Content-Disposition"]

    inline = swift_signed.public_url(
        file_id, response=ResponseOverrides(content_disposition="inline")
    )
    assert inline is not None
    assert requests.get(inline, timeout=10).headers["Content-Disposition"].startswith("inline")

    tampered = url.replace("temp_url_sig=", "temp_url_sig=0", 1)
    assert requests.get(tampered, timeout=10).status_code == 401


def test_swift_signed_urls_need_the_temp_url_key() -> None:
    with pytest.raises(ConfigurationError, match="temp_url_key"):
        SwiftStorage("media", auth_url="http://127.0.0.1:9/auth/v1.0", user="a:b", key="k",
                     public_url="signed")  # fmt: skip


#: A readable key with what a signed URL must escape: spaces, '&', '+', '%', non-ASCII, '/'.
SIGNED_KEY = "Société {tenant}/{id}/{filename}"


@pytest.mark.parametrize("fixture", ["gcs_signed", "azure_signed", "swift_signed"])
def test_signed_urls_of_readable_keys_serve_the_file(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    storage = request.getfixturevalue(fixture)
    file_id = storage.create(
        b"keyed and signed", "Résumé 100% final+1.txt", key=SIGNED_KEY,
        key_values={"tenant": "a&b"},
    )  # fmt: skip
    assert file_id.startswith("Société a&b/") and file_id.endswith("/Résumé 100% final+1.txt")
    url = storage.public_url(file_id)
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"keyed and signed"
