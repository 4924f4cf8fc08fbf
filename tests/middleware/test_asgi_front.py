"""What the ASGI front does beyond the behaviour tests it shares with the WSGI one (every test
using ``served`` runs over both): mounting in Starlette and FastAPI, ASGI's root_path, storage
I/O off the event loop, a client that goes away, lifespan and WebSocket messages."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sa_depot import asgi
from sa_depot.io.interfaces import FileInfo, StoredFile
from sa_depot.io.memory import MemoryFileStorage, MemoryStoredFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import TRACKING_BACKEND, TrackingStorage, content, eventually
from tests.middleware.test_fuzz import call_asgi


@pytest.fixture
def media() -> MemoryFileStorage:
    storage = DepotManager.configure(
        "media", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    assert isinstance(storage, MemoryFileStorage)
    return storage


# -- mounting ---------------------------------------------------------------------------------
def test_make_app_mounted_in_fastapi_serves_and_links_under_its_mount(
    served_asgi: Served, media: MemoryFileStorage
) -> None:
    photo = media.create(b"a photo", filename="photo.jpg")
    api = FastAPI()
    api.mount("/files", asgi.make_app(root_path="/files"))

    @api.get("/photo")
    def photo_url() -> dict[str, str]:
        return {"url": DepotManager.url_for(f"media/{photo}")}

    served_asgi.mount_asgi(api)
    link = served_asgi.get("/photo").json()["url"]
    assert link == f"/files/media/{photo}"
    response = served_asgi.get(link)
    assert response.status_code == 200
    assert response.content == b"a photo"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert served_asgi.get("/files/nosuch/x").status_code == 404


def test_make_middleware_around_starlette_links_from_its_routes(
    served_asgi: Served, media: MemoryFileStorage
) -> None:
    photo = media.create(b"a photo", filename="photo.jpg")

    async def page(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(DepotManager.url_for(f"media/{photo}"))

    app = asgi.make_middleware(Starlette(routes=[Route("/", page)]))
    served_asgi.mount_asgi(app)
    link = served_asgi.get("/").text
    assert link == f"/depot/media/{photo}"
    assert served_asgi.get(link).content == b"a photo"
    assert served_asgi.get("/elsewhere").status_code == 404  # Starlette's own 404


@pytest.mark.parametrize("path_includes_root", [True, False])
def test_asgi_root_path_with_or_without_the_root_in_path(
    media: MemoryFileStorage, path_includes_root: bool
) -> None:
    """A server under ``--root-path /shop`` passes the root in ``root_path``; ``path`` holds it
    too (uvicorn, Starlette's Mount) or not (older servers): both serve, both link."""
    photo = media.create(b"a photo")
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(DepotManager.url_for(f"media/{photo}"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = asgi.make_middleware(app)
    prefix = "/shop" if path_includes_root else ""
    status, _, body = call_asgi_under_root(middleware, f"{prefix}/depot/media/{photo}", "/shop")
    assert (status, body) == (200, b"a photo")
    call_asgi_under_root(middleware, f"{prefix}/page", "/shop")
    assert seen == [f"/shop/depot/media/{photo}"]


def call_asgi_under_root(app: asgi.ASGIApp, path: str, root: str) -> tuple[int, Any, bytes]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": path, "root_path": root, "headers": []}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return messages[0]["status"], messages[0]["headers"], body


def test_a_standalone_front_under_another_root_warns_once(
    media: MemoryFileStorage, caplog: pytest.LogCaptureFixture
) -> None:
    photo = media.create(b"a photo")
    front = asgi.DepotMiddleware(None, mountpoint="/")
    with caplog.at_level("WARNING", logger="sa_depot.middleware"):
        for _ in range(2):
            status, _, _ = call_asgi_under_root(front, f"/files/media/{photo}", "/files")
            assert status == 200
    (warning,) = [r for r in caplog.records if "ASGI root_path" in r.getMessage()]
    assert "root_path='/files'" in warning.getMessage()


# -- the event loop ---------------------------------------------------------------------------
class ThreadRecordingFile(MemoryStoredFile):
    def __init__(self, info: FileInfo, data: bytes, threads: list[str]) -> None:
        super().__init__(info, data)
        self._threads = threads

    def readinto(self, buffer: Any) -> int:
        self._threads.append(threading.current_thread().name)
        return super().readinto(buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._threads.append(threading.current_thread().name)
        return super().seek(offset, whence)


class ThreadRecordingStorage(MemoryFileStorage):
    """Records the thread of every open, read and seek."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.threads: list[str] = []

    def _open(self, file_id: str) -> StoredFile:
        self.threads.append(threading.current_thread().name)
        plain = super()._open(file_id)
        data = plain.read()
        plain.close()
        return ThreadRecordingFile(plain.info, data, self.threads)


def test_storage_io_never_runs_on_the_event_loop(served_asgi: Served) -> None:
    storage = DepotManager.configure(
        "recorded", {"depot.backend": "tests.middleware.test_asgi_front.ThreadRecordingStorage"}
    )
    assert isinstance(storage, ThreadRecordingStorage)
    data = content(300_000)
    file_id = storage.create(data, filename="a.bin")
    served_asgi.mount_asgi(asgi.DepotMiddleware(chunk_size=16 * 1024))
    assert served_asgi.get(f"/depot/recorded/{file_id}").content == data
    ranged = served_asgi.get(
        f"/depot/recorded/{file_id}", headers={"Range": "bytes=5-9,200000-200009"}
    )
    assert ranged.status_code == 206
    assert served_asgi.head(f"/depot/recorded/{file_id}").status_code == 200
    assert storage.threads, "the storage was not used"
    assert "uvicorn" not in storage.threads  # the event loop's thread (see conftest)


def test_a_client_that_goes_away_stops_the_reads(served_asgi: Served) -> None:
    storage = DepotManager.configure("tracked", {"depot.backend": TRACKING_BACKEND})
    assert isinstance(storage, TrackingStorage)
    size = 16 * 1024 * 1024
    file_id = storage.create(content(size), filename="big.bin")
    storage.reset_counters()
    served_asgi.mount_asgi(asgi.DepotMiddleware(chunk_size=64 * 1024))
    host, port = served_asgi.host, served_asgi.port
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(f"GET /depot/tracked/{file_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
    assert eventually(lambda: storage.closed == 1)  # the body was closed...
    assert storage.bytes_read < size // 2  # ...long before the end of the file


# -- other ASGI messages ----------------------------------------------------------------------
def test_a_standalone_front_answers_lifespan_and_refuses_websockets() -> None:
    front = asgi.DepotMiddleware()
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(front({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    sent.clear()
    asyncio.run(front({"type": "websocket", "path": "/depot/x/y"}, receive, send))
    assert sent[0]["type"] == "websocket.close"


def test_the_authorization_hook_sees_the_request_as_a_werkzeug_request(
    served_asgi: Served, media: MemoryFileStorage
) -> None:
    file_id = media.create(b"for alice only")
    seen: list[tuple[str, str | None, str]] = []

    def owner_only(request: Any, stored: StoredFile) -> bool:
        seen.append((request.path, request.headers.get("X-User"), request.args.get("v", "")))
        return request.headers.get("X-User") == "alice"

    front = asgi.DepotMiddleware(policies={"media": ServingPolicy(authorize=owner_only)})
    served_asgi.mount_asgi(front)
    url = f"/depot/media/{file_id}?v=2"
    assert served_asgi.get(url, headers={"X-User": "alice"}).content == b"for alice only"
    assert served_asgi.get(url, headers={"X-User": "bob"}).status_code == 403
    assert seen == [
        (f"/depot/media/{file_id}", "alice", "2"),
        (f"/depot/media/{file_id}", "bob", "2"),
    ]


def test_from_server_shares_one_configuration(media: MemoryFileStorage) -> None:
    from sa_depot.middleware import DepotMiddleware as WsgiMiddleware

    wsgi = WsgiMiddleware(secret="s" * 20, policies={"media": ServingPolicy(cache="no-store")})
    front = asgi.DepotMiddleware.from_server(wsgi.server)
    assert front.policy_for("media") is wsgi.policy_for("media")
    file_id = media.create(b"x")
    assert front.url_for(f"media/{file_id}", expires_in=60).startswith(f"/depot/media/{file_id}?")
    status, headers, _ = call_asgi(front, "GET", f"/depot/media/{file_id}", b"", {})
    assert status == 200
    assert headers["Cache-Control"] == "no-store"


def test_a_stored_file_shorter_than_recorded_cuts_the_connection(
    served: Served, make_middleware: Any, memory: MemoryFileStorage
) -> None:
    """Both fronts: a body that ends early is not passed off as the whole file."""
    data = content(200_000)
    file_id = memory.create(data)
    info, _ = memory._files[file_id]
    info.content_length = len(data) + 5000  # the metadata promises more than the content has
    served.mount(make_middleware(chunk_size=16 * 1024))
    with pytest.raises(requests.exceptions.RequestException):
        response = served.get(f"/depot/files/{file_id}")
        assert len(response.content) == int(response.headers["Content-Length"])
