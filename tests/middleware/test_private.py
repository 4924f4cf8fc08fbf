"""Private files: the authorization hook and signed, expiring URLs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.exceptions import Unauthorized
from werkzeug.wrappers import Request

from sa_depot.exceptions import ConfigurationError
from sa_depot.io.interfaces import FileStorage, StoredFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from sa_depot.serving.signing import UrlSigner
from tests.middleware.conftest import Served
from tests.middleware.helpers import SECRET

MakeMiddleware = Callable[..., DepotMiddleware]


def owner_only(request: Request, stored: StoredFile) -> bool:
    """Allows the request whose X-User header names the file's owner (its filename here)."""
    return request.headers.get("X-User") == stored.filename


@pytest.fixture
def private_id(memory: FileStorage) -> str:
    return memory.create(b"private bytes", filename="alice", content_type="text/plain")


# -- authorization hook ---------------------------------------------------------------------
def test_the_hook_sees_the_request_and_the_file(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    served.mount(make_middleware(policies={"files": ServingPolicy(authorize=owner_only)}))
    url = f"/depot/files/{private_id}"
    allowed = served.get(url, headers={"X-User": "alice"})
    assert allowed.status_code == 200
    assert allowed.content == b"private bytes"
    assert allowed.headers["Cache-Control"] == "private, max-age=604800"
    denied = served.get(url, headers={"X-User": "mallory"})
    assert denied.status_code == 403
    assert b"private bytes" not in denied.content
    assert denied.headers["Cache-Control"] == "no-store"
    assert served.head(url).status_code == 403
    assert served.get(url, headers={"Range": "bytes=0-3"}).status_code == 403


@pytest.mark.parametrize(
    "hook_result",
    [False, None, 1, "yes", PermissionError("not yours")],
    ids=["False", "None", "1", "str", "PermissionError"],
)
def test_anything_but_true_denies(
    served: Served, make_middleware: MakeMiddleware, private_id: str, hook_result: object
) -> None:
    def hook(request: Request, stored: StoredFile) -> bool:
        if isinstance(hook_result, Exception):
            raise hook_result
        return hook_result  # type: ignore[return-value]

    served.mount(make_middleware(policies={"files": ServingPolicy(authorize=hook)}))
    assert served.get(f"/depot/files/{private_id}").status_code == 403


def test_the_hook_may_answer_with_an_http_exception(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    def hook(request: Request, stored: StoredFile) -> bool:
        raise Unauthorized(www_authenticate=None)

    served.mount(make_middleware(policies={"files": ServingPolicy(authorize=hook)}))
    response = served.get(f"/depot/files/{private_id}")
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_failing_hook_fails_closed(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    def hook(request: Request, stored: StoredFile) -> bool:
        raise RuntimeError("database down")

    served.mount(make_middleware(policies={"files": ServingPolicy(authorize=hook)}))
    response = served.get(f"/depot/files/{private_id}")
    assert response.status_code == 500
    assert b"private bytes" not in response.content


def test_denials_can_look_like_missing_files(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    policy = ServingPolicy(authorize=lambda request, stored: False, deny_status=404)
    served.mount(make_middleware(policies={"files": policy}))
    denied = served.get(f"/depot/files/{private_id}")
    missing = served.get("/depot/files/00000000-0000-0000-0000-000000000000")
    assert denied.status_code == missing.status_code == 404
    assert denied.content == missing.content

    def without_date(response: requests.Response) -> dict[str, str]:
        # the ASGI server spells it "date": a second may tick between the two requests
        return {k.lower(): v for k, v in response.headers.items() if k.lower() != "date"}

    assert without_date(denied) == without_date(missing)


def test_other_storages_are_not_behind_the_hook(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    public = DepotManager.configure(
        "public", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    public_id = public.create(b"for everyone")
    policy = ServingPolicy(authorize=lambda request, stored: False)
    served.mount(make_middleware(policies={"files": policy}))
    assert served.get(f"/depot/files/{private_id}").status_code == 403
    assert served.get(f"/depot/public/{public_id}").content == b"for everyone"


def test_restricted_files_cannot_be_cached_publicly() -> None:
    with pytest.raises(ConfigurationError, match="shared caches"):
        ServingPolicy(cache="public", authorize=owner_only)
    with pytest.raises(ConfigurationError, match="shared caches"):
        ServingPolicy(cache="public", require_signature=True)


# -- signed URLs ----------------------------------------------------------------------------
def test_signed_url_serves_the_file_until_it_expires(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    served.mount(
        make_middleware(
            secret=SECRET,
            policies={"files": ServingPolicy(require_signature=True)},
        )
    )
    url = DepotManager.url_for(f"files/{private_id}", expires_in=120)
    assert re.fullmatch(rf"/depot/files/{private_id}\?expires=\d+&signature=[0-9a-f]{{64}}", url), (
        url
    )
    response = served.get(url)
    assert response.status_code == 200
    assert response.content == b"private bytes"
    # a cached copy must not outlive the link
    max_age = int(response.headers["Cache-Control"].split("max-age=")[1])
    assert 0 < max_age <= 121
    assert response.headers["Cache-Control"].startswith("private")
    # without the signature: refused
    assert served.get(f"/depot/files/{private_id}").status_code == 403


def test_expired_signed_url_is_refused(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    served.mount(make_middleware(secret=SECRET))
    signer = UrlSigner(SECRET)
    expired_at = int(time.time()) - 5
    signature = signer.sign(f"files/{private_id}", expired_at)
    response = served.get(f"/depot/files/{private_id}?expires={expired_at}&signature={signature}")
    assert response.status_code == 403
    assert b"expired" in response.content
    assert b"private bytes" not in response.content


def tampered_variants(url: str, other_id: str, file_id: str) -> list[str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    expires, signature = query["expires"][0], query["signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert flipped != signature
    return [
        f"{parts.path}?expires={int(expires) + 3600}&signature={signature}",  # longer life
        f"{parts.path}?expires={expires}&signature={flipped}",
        f"{parts.path}?expires={expires}&signature={signature.upper()}",
        f"{parts.path}?expires={expires}&signature={signature[:-1]}",
        f"{parts.path}?expires={expires}&signature=",
        f"{parts.path}?expires={expires}",
        f"{parts.path}?signature={signature}",
        f"{parts.path}?expires=-{expires}&signature={signature}",
        f"{parts.path}?expires={expires}.0&signature={signature}",
        f"{parts.path}?expires=%EF%BC%91&signature={signature}",  # a full-width digit
        f"{parts.path}?expires={expires}&signature=%C3%A9{signature[2:]}",  # not ASCII
        # the same signature on another file
        f"{parts.path.replace(file_id, other_id)}?expires={expires}&signature={signature}",
    ]


def test_tampered_signed_urls_are_refused(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage, private_id: str
) -> None:
    other_id = memory.create(b"other private bytes")
    policy = ServingPolicy(require_signature=True)
    served.mount(make_middleware(secret=SECRET, policies={"files": policy}))
    url = DepotManager.url_for(f"files/{private_id}", expires_in=600)
    assert served.get(url).status_code == 200
    for tampered in tampered_variants(url, other_id, private_id):
        response = served.get(tampered)
        assert response.status_code == 403, tampered
        assert b"private bytes" not in response.content


def test_a_bad_signature_is_refused_even_where_none_is_required(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    served.mount(make_middleware(secret=SECRET))
    url = f"/depot/files/{private_id}"
    assert served.get(url).status_code == 200
    assert served.get(url + "?expires=99999999999&signature=" + "0" * 64).status_code == 403


def test_signed_url_skips_the_hook(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    policy = ServingPolicy(authorize=lambda request, stored: False)
    served.mount(make_middleware(secret=SECRET, policies={"files": policy}))
    assert served.get(f"/depot/files/{private_id}").status_code == 403
    signed = DepotManager.url_for(f"files/{private_id}", expires_in=60)
    assert served.get(signed).content == b"private bytes"


def test_the_filename_segment_is_outside_the_signature(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    middleware = make_middleware(
        secret=SECRET, policies={"files": ServingPolicy(require_signature=True)}
    )
    served.mount(middleware)
    url = middleware.url_for(f"files/{private_id}", expires_in=60, filename="my notes.txt")
    assert url.startswith(f"/depot/files/{private_id}/my%20notes.txt?expires=")
    assert served.get(url).content == b"private bytes"


def test_storages_requiring_signatures_get_a_default_lifetime(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    policy = ServingPolicy(require_signature=True, signed_url_expires_in=30)
    served.mount(make_middleware(secret=SECRET, policies={"files": policy}))
    url = DepotManager.url_for(f"files/{private_id}")
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert time.time() < expires <= time.time() + 31
    assert served.get(url).content == b"private bytes"


def test_rotated_secrets_keep_old_links_working(
    served: Served, make_middleware: MakeMiddleware, private_id: str
) -> None:
    policy = ServingPolicy(require_signature=True)
    old = DepotMiddleware(secret=SECRET, policies={"files": policy})
    url = old.url_for(f"files/{private_id}", expires_in=60)
    new_secret = "a-brand-new-secret-0123456789"
    served.mount(
        make_middleware(secret=new_secret, previous_secrets=[SECRET], policies={"files": policy})
    )
    assert served.get(url).status_code == 200
    served.mount(make_middleware(secret=new_secret, policies={"files": policy}))
    assert served.get(url).status_code == 403


def test_signing_needs_a_secret(memory: FileStorage, private_id: str) -> None:
    DepotManager.make_middleware(None)
    with pytest.raises(ConfigurationError, match="secret"):
        DepotManager.url_for(f"files/{private_id}", expires_in=60)
    assert DepotManager.url_for(f"files/{private_id}") == f"/depot/files/{private_id}"
    with pytest.raises(ConfigurationError, match="secret"):
        DepotMiddleware(policies={"files": ServingPolicy(require_signature=True)})
    with pytest.raises(ConfigurationError, match="16 bytes"):
        DepotMiddleware(secret="short")


def test_requiring_signatures_without_a_lifetime_refuses_unsigned_urls(private_id: str) -> None:
    middleware = DepotMiddleware(
        secret=SECRET, policies={"files": ServingPolicy(require_signature=True)}
    )
    with pytest.raises(ConfigurationError, match="expires_in"):
        middleware.url_for(f"files/{private_id}")


@pytest.mark.parametrize("expires_in", [0, -5, float("nan"), float("inf"), True, "60"])
def test_bad_lifetimes_are_refused(private_id: str, expires_in: object) -> None:
    middleware = DepotMiddleware(secret=SECRET)
    with pytest.raises(ConfigurationError, match="expires_in"):
        middleware.url_for(f"files/{private_id}", expires_in=expires_in)  # type: ignore[arg-type]
