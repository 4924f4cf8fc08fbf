"""Real servers (waitress and uvicorn on 127.0.0.1) and the storages the middleware tests serve.

One waitress server and one uvicorn server run for the whole session; each test plugs its own
application into one of them with ``served.mount(app)`` (``served`` is a function-scoped
fixture), so tests do not pay for a server start each.

Every test that uses ``served`` runs twice, over both fronts of the file server: ``wsgi``
mounts the WSGI application it is given on waitress; ``asgi`` mounts, on uvicorn, the ASGI
front (:mod:`sa_depot.asgi`) of the same :class:`~sa_depot.serving.server.FileServer` (an
application the middleware wraps is adapted with a2wsgi). So the ASGI front passes the WSGI
middleware's behaviour tests, unchanged. Tests about WSGI alone (``wsgi.file_wrapper``, a
WSGI application of the test's own) are marked ``wsgi_only``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import uvicorn
from a2wsgi import WSGIMiddleware
from waitress.server import create_server

from sa_depot import asgi
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class AppSlot:
    """The WSGI application the session's server currently runs, plus a log of requests."""

    app: WSGIApplication | None = None
    log: list[LoggedRequest] = field(default_factory=list)
    returned: list[Any] = field(default_factory=list)  # the app_iter of each response
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").title(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        with self.lock:
            self.log.append(
                LoggedRequest(
                    environ["REQUEST_METHOD"],
                    environ.get("PATH_INFO", ""),
                    environ.get("QUERY_STRING", ""),
                    headers,
                )
            )
        if self.app is None:
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return []
        result = self.app(environ, start_response)
        with self.lock:
            self.returned.append(result)
        return result


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class AsgiSlot:
    """The ASGI application the session's uvicorn currently runs, plus a log of requests."""

    app: asgi.ASGIApp | None = None
    log: list[LoggedRequest] = field(default_factory=list)
    returned: list[Any] = field(default_factory=list)  # kept for the interface; always empty

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {
                name.decode("latin-1").title(): value.decode("latin-1")
                for name, value in scope["headers"]
            }
            self.log.append(
                LoggedRequest(
                    scope["method"],
                    scope["path"],
                    scope["query_string"].decode("latin-1"),
                    headers,
                )
            )
        if self.app is None:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def asgi_front(app: WSGIApplication) -> asgi.ASGIApp:
    """The ASGI front of the file server of ``app``, a WSGI DepotMiddleware (the application
    it wraps, if any, adapted to ASGI)."""
    if not isinstance(app, DepotMiddleware):
        raise TypeError(
            f"the asgi front serves DepotMiddleware, not {type(app).__name__}: mark the test "
            "wsgi_only"
        )
    inner = WSGIMiddleware(app.app) if app.app is not None else None  # type: ignore[arg-type]
    return asgi.DepotMiddleware.from_server(app.server, inner)


@dataclass
class Served:
    """What a test gets: the base URL, and ``mount(app)`` to choose what is served."""

    base_url: str
    slot: AppSlot | AsgiSlot
    http: requests.Session
    #: ``"wsgi"`` (waitress) or ``"asgi"`` (uvicorn, the ASGI front of the same file server).
    front: str = "wsgi"

    def mount(self, app: WSGIApplication) -> None:
        if isinstance(self.slot, AsgiSlot):
            self.slot.app = asgi_front(app)
        else:
            self.slot.app = app
        self.slot.log.clear()
        self.slot.returned.clear()

    def mount_asgi(self, app: asgi.ASGIApp) -> None:
        """Serve an ASGI application of the test's own (``front="asgi"`` only)."""
        assert isinstance(self.slot, AsgiSlot), "mount_asgi needs the uvicorn server"
        self.slot.app = app
        self.slot.log.clear()

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url(path), allow_redirects=False, timeout=30, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.head(self.url(path), allow_redirects=False, timeout=30, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(
            method, self.url(path), allow_redirects=False, timeout=30, **kwargs
        )

    @property
    def host(self) -> str:
        return self.base_url.split("//", 1)[1].split(":")[0]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])


@pytest.fixture(scope="session")
def _waitress() -> Iterator[tuple[str, AppSlot]]:
    slot = AppSlot()
    server = create_server(slot, host="127.0.0.1", port=0, threads=8, channel_timeout=30)
    port = server.effective_port
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", slot
    finally:
        server.close()
        server.task_dispatcher.shutdown()


@pytest.fixture(scope="session")
def _uvicorn() -> Iterator[tuple[str, AsgiSlot]]:
    slot = AsgiSlot()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(slot, lifespan="off", log_level="warning", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="uvicorn", daemon=True
    )
    thread.start()
    for _ in range(3000):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", slot
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wsgi_only: a test of the WSGI front alone (served runs it over waitress only)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "served" in metafunc.fixturenames:
        fronts = (
            ["wsgi"] if metafunc.definition.get_closest_marker("wsgi_only") else ["wsgi", "asgi"]
        )
        metafunc.parametrize("front", fronts, scope="function")


@pytest.fixture
def served_asgi(_uvicorn: tuple[str, AsgiSlot]) -> Iterator[Served]:
    """The session's uvicorn, for ASGI applications of the test's own (``mount_asgi``)."""
    base_url, slot = _uvicorn
    with requests.Session() as http:
        yield Served(base_url, slot, http, "asgi")
    slot.app = None


@pytest.fixture
def served(front: str, request: pytest.FixtureRequest) -> Iterator[Served]:
    """The session's waitress (``front="wsgi"``) or uvicorn (``front="asgi"``)."""
    base_url, slot = request.getfixturevalue("_uvicorn" if front == "asgi" else "_waitress")
    with requests.Session() as http:
        yield Served(base_url, slot, http, front)
    slot.app = None


@pytest.fixture
def memory() -> FileStorage:
    """A memory storage configured as 'files' (the default)."""
    return DepotManager.configure(
        "files", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )


@pytest.fixture
def local(tmp_path: Path) -> FileStorage:
    """A local storage configured as 'disk', under tmp_path/'storage'."""
    return DepotManager.configure("disk", {"depot.storage_path": str(tmp_path / "storage")})


@pytest.fixture
def make_middleware() -> Callable[..., DepotMiddleware]:
    """``make_middleware(app=None, **options)``, registered with DepotManager for url_for."""

    def make(app: WSGIApplication | None = None, **options: Any) -> DepotMiddleware:
        return DepotManager.make_middleware(app, **options)  # type: ignore[no-any-return]

    return make
