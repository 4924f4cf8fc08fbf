"""Which requests the middleware answers, which it passes on, and what it refuses."""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest
from werkzeug.test import Client

from sa_depot.exceptions import ConfigurationError, StorageError
from sa_depot.io.interfaces import FileStorage, StoredFile
from sa_depot.io.memory import MemoryFileStorage, MemoryStoredFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware
from tests.middleware.conftest import Served

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MakeMiddleware = Callable[..., DepotMiddleware]


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Reports what it received, to prove the middleware passed the request on untouched."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    report = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ.get("QUERY_STRING", ""),
        "body": body.decode(),
        "werkzeug_keys": sorted(k for k in environ if k.startswith("werkzeug")),
    }
    data = json.dumps(report).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def raw_get(served: Served, path: str, method: str = "GET") -> tuple[int, bytes]:
    """A request with ``path`` sent exactly as given (requests would normalise '..')."""
    connection = http.client.HTTPConnection(served.host, served.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_requests_outside_the_mountpoint_reach_the_app_untouched(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    served.mount(make_middleware(echo_app))
    for path in ("/", "/depotx/files/1", "/other/depot/files", "/dep"):
        response = served.request("POST", path + "?a=1&b=%20", data=b"payload")
        assert response.status_code == 200, path
        assert response.json() == {
            "method": "POST",
            "path": path,
            "query": "a=1&b=%20",
            "body": "payload",
            "werkzeug_keys": [],
        }


def test_standalone_middleware_answers_404_outside_the_mountpoint(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    file_id = memory.create(b"hello")
    served.mount(make_middleware())
    assert served.get("/").status_code == 404
    assert served.get(f"/files/{file_id}").status_code == 404
    assert served.get(f"/depot/files/{file_id}").content == b"hello"


@pytest.mark.parametrize(
    "path",
    [
        "/depot",
        "/depot/",
        "/depot/files",
        "/depot/files/",
        "/depot/files/{id}/",
        "/depot/files/{id}/name/extra",
        "/depot/files//{id}",
        "/depot//files/{id}",
        "/depot/nosuchstorage/{id}",
        "/depot/files/00000000-0000-0000-0000-000000000000",  # well formed, absent
        "/depot/files/{ID}",  # not the canonical lowercase form
        "/depot/files/..%2F..%2Fetc%2Fpasswd",
        "/depot/files/%2e%2e",
        "/depot/files/..",
        "/depot/../depot/files/{id}x",
        "/depot/files/{id}%00",
        "/depot/files/x%00y",
        "/depot/files/" + "a" * 5000,
        "/depot/files/%ff%fe",
    ],
)
def test_anything_else_under_the_mountpoint_is_404(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage, path: str
) -> None:
    file_id = memory.create(b"hello")
    served.mount(make_middleware(echo_app))
    status, body = raw_get(served, path.format(id=file_id, ID=file_id.upper()))
    assert status == 404
    assert b"hello" not in body


def test_method_is_checked_on_file_paths_only(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    file_id = memory.create(b"hello")
    served.mount(make_middleware())
    assert raw_get(served, f"/depot/files/{file_id}", "DELETE")[0] == 405
    assert raw_get(served, "/depot/files", "DELETE")[0] == 404
    assert memory.exists(file_id)


def test_aliases_are_served_with_their_storage_policy(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    from sa_depot.middleware import ServingPolicy

    file_id = memory.create(b"aliased")
    DepotManager.alias("pictures", "files")
    served.mount(make_middleware(policies={"files": ServingPolicy(cache="no-store")}))
    response = served.get(f"/depot/pictures/{file_id}")
    assert response.content == b"aliased"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("mountpoint", "prefix"),
    [("/media/files/", "/media/files"), ("/", ""), ("/static", "/static")],
)
def test_mountpoints(
    served: Served,
    make_middleware: MakeMiddleware,
    memory: FileStorage,
    mountpoint: str,
    prefix: str,
) -> None:
    file_id = memory.create(b"mounted")
    middleware = make_middleware(echo_app, mountpoint=mountpoint)
    served.mount(middleware)
    url = middleware.url_for(f"files/{file_id}")
    assert url == f"{prefix}/files/{file_id}"
    assert served.get(url).content == b"mounted"
    assert DepotManager.url_for(f"files/{file_id}") == url


@pytest.mark.parametrize("mountpoint", ["depot", "", "/a?b", "/a#b", "/a%2fb", "/a\nb"])
def test_bad_mountpoints_are_refused(mountpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="mountpoint"):
        DepotMiddleware(mountpoint=mountpoint)


class BrokenStorage(MemoryFileStorage):
    def _open(self, file_id: str) -> StoredFile:
        raise StorageError(self.description, "connection refused")


class FailingReads(MemoryStoredFile):
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        raise StorageError("'flaky'", "connection reset")


class FlakyStorage(MemoryFileStorage):
    """Opens files, then fails when they are measured (they have no recorded length)."""

    def _open(self, file_id: str) -> StoredFile:
        opened = super()._open(file_id)
        info = opened.info
        info.content_length = None
        return FailingReads(info, b"")


def test_a_failing_storage_gives_503(memory: FileStorage) -> None:
    DepotManager.configure("broken", {"depot.backend": f"{__name__}.BrokenStorage"})
    flaky = DepotManager.configure("flaky", {"depot.backend": f"{__name__}.FlakyStorage"})
    file_id = flaky.create(b"content")
    client = Client(DepotMiddleware())
    for url in ("/depot/broken/00000000-0000-0000-0000-000000000000", f"/depot/flaky/{file_id}"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert b"connection" not in response.data  # the cause stays in the log
