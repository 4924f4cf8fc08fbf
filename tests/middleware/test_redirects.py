"""Files with a public or presigned URL: temporary redirects, or proxied bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from sa_depot.exceptions import ConfigurationError
from sa_depot.io.interfaces import ResponseOverrides, StoredFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import (
    DOWNLOADS,
    SHOWN_INLINE,
    TRACKING_BACKEND,
    TrackingStorage,
    content,
)

MakeMiddleware = Callable[..., DepotMiddleware]
PRESIGNED = "https://bucket.s3.example/{id}?X-Amz-Expires=600&X-Amz-Signature=abc%20def"
DATA = content(50_000)


@pytest.fixture
def storage() -> TrackingStorage:
    storage = DepotManager.configure("s3", {"depot.backend": TRACKING_BACKEND})
    assert isinstance(storage, TrackingStorage)
    return storage


@pytest.fixture
def file_id(storage: TrackingStorage) -> str:
    file_id = storage.create(DATA, filename="clip.bin")
    storage.public_urls[file_id] = PRESIGNED.format(id=file_id)
    return file_id


def test_files_with_a_public_url_get_a_temporary_redirect(
    served: Served, make_middleware: MakeMiddleware, storage: TrackingStorage, file_id: str
) -> None:
    served.mount(make_middleware())
    for response in (served.get(f"/depot/s3/{file_id}"), served.head(f"/depot/s3/{file_id}")):
        assert response.status_code == 307
        assert response.headers["Location"] == PRESIGNED.format(id=file_id)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Length" in response.headers
    get = served.get(f"/depot/s3/{file_id}")
    assert int(get.headers["Content-Length"]) == len(get.content)
    assert storage.bytes_read == 0  # the bytes are not touched


def test_redirects_can_be_302_but_never_permanent(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    served.mount(make_middleware(policy=ServingPolicy(redirect_status=302)))
    assert served.get(f"/depot/s3/{file_id}").status_code == 302
    with pytest.raises(ConfigurationError, match="301"):
        ServingPolicy(redirect_status=301)  # type: ignore[arg-type]


def test_public_storages_may_let_caches_keep_the_redirect(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    policy = ServingPolicy(cache="public", redirect_max_age=300)
    served.mount(make_middleware(policies={"s3": policy}))
    response = served.get(f"/depot/s3/{file_id}")
    assert response.status_code == 307
    assert response.headers["Cache-Control"] == "public, max-age=300"
    served.mount(make_middleware(policies={"s3": ServingPolicy(redirect_max_age=300)}))
    assert served.get(f"/depot/s3/{file_id}").headers["Cache-Control"] == "no-store"


def test_restricted_files_redirect_only_after_authorization(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    def hook(request: Request, stored: StoredFile) -> bool:
        return request.headers.get("X-User") == "alice"

    served.mount(make_middleware(policies={"s3": ServingPolicy(authorize=hook)}))
    denied = served.get(f"/depot/s3/{file_id}")
    assert denied.status_code == 403
    assert "Location" not in denied.headers
    assert b"X-Amz" not in denied.content
    allowed = served.get(f"/depot/s3/{file_id}", headers={"X-User": "alice"})
    assert allowed.status_code == 307
    assert allowed.headers["Cache-Control"] == "no-store"


def test_proxy_mode_streams_the_bytes(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    served.mount(make_middleware(policies={"s3": ServingPolicy(public_urls="proxy")}))
    response = served.get(f"/depot/s3/{file_id}")
    assert response.status_code == 200
    assert response.content == DATA
    assert "Location" not in response.headers
    partial = served.get(f"/depot/s3/{file_id}", headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206
    assert partial.content == DATA[100:200]


def test_files_without_a_public_url_are_served(
    served: Served, make_middleware: MakeMiddleware, storage: TrackingStorage
) -> None:
    plain = storage.create(b"no url")
    served.mount(make_middleware())
    assert served.get(f"/depot/s3/{plain}").content == b"no url"


def test_a_redirect_asks_the_storage_for_the_headers_of_a_proxied_response(
    served: Served, make_middleware: MakeMiddleware, storage: TrackingStorage
) -> None:
    served.mount(make_middleware())
    proxying = Client(DepotMiddleware(policy=ServingPolicy(public_urls="proxy")))
    for filename, content_type in DOWNLOADS:
        file_id = storage.create(b"data", filename=filename, content_type=content_type)
        storage.public_urls[file_id] = PRESIGNED.format(id=file_id)
        proxied = proxying.get(f"/depot/s3/{file_id}")
        assert proxied.status_code == 200
        redirected = served.get(f"/depot/s3/{file_id}")
        assert redirected.status_code == 307, filename
        assert storage.overrides_asked[file_id] == ResponseOverrides(
            content_type=proxied.headers["Content-Type"],
            content_disposition=proxied.headers["Content-Disposition"],
        ), filename
        inline = proxied.headers["Content-Disposition"].startswith("inline")
        assert inline is (content_type.split(";")[0] in SHOWN_INLINE), filename


def test_a_storage_whose_url_cannot_carry_the_headers_is_proxied(
    served: Served, make_middleware: MakeMiddleware, storage: TrackingStorage, file_id: str
) -> None:
    storage.carries_overrides = False  # a bare object URL: the store would send its own headers
    served.mount(make_middleware())
    for response in (served.get(f"/depot/s3/{file_id}"), served.head(f"/depot/s3/{file_id}")):
        assert response.status_code == 200
        assert "Location" not in response.headers
        assert response.headers["Content-Disposition"] == 'attachment; filename="clip.bin"'
    assert served.get(f"/depot/s3/{file_id}").content == DATA
