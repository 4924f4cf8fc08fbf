"""A real WSGI server (waitress on 127.0.0.1) and the storages the middleware tests serve.

One waitress server runs for the whole session; each test plugs its own WSGI application into
it with ``served.mount(app)`` (``served`` is a function-scoped fixture), so tests do not pay
for a server start each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from waitress.server import create_server

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


@dataclass
class Served:
    """What a test gets: the base URL, and ``mount(app)`` to choose what is served."""

    base_url: str
    slot: AppSlot
    http: requests.Session

    def mount(self, app: WSGIApplication) -> None:
        self.slot.app = app
        self.slot.log.clear()
        self.slot.returned.clear()

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


@pytest.fixture
def served(_waitress: tuple[str, AppSlot]) -> Iterator[Served]:
    base_url, slot = _waitress
    with requests.Session() as http:
        yield Served(base_url, slot, http)
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
