"""Property-based tests: whatever the path and headers, no 5xx and nothing outside the storages.

Next to the local storage's directory lie a secret file, a sibling directory whose name starts
like the storage's, and a file named like a valid id one level up. An audit hook watches every
file the process opens or lists while a request runs: none may be outside the storage. Many
examples run in-process, through Werkzeug's test client (WSGI) and by calling the ASGI front
with the scope a server would pass; a smaller sample goes through real servers (waitress for
WSGI, uvicorn for ASGI).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.http import http_date
from werkzeug.test import Client

from sa_depot import asgi
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import SECRET, content

TOKEN = b"TOP-SECRET-7f3a9c"
ABSENT_ID = "00000000-0000-0000-0000-000000000000"
PRIVATE = b"\xff" * 3000
#: Examples of the in-process test (a seventh of them go through waitress); raise it to dig.
EXAMPLES = int(os.environ.get("SA_DEPOT_FUZZ_EXAMPLES", "400"))
WATCHED_EVENTS = {
    "open",
    "os.listdir",
    "os.scandir",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "os.chmod",
    "os.utime",
    "os.link",
    "os.symlink",
    "shutil.rmtree",
}


class FileAccessWatch:
    """Records accesses to paths under ``root`` but outside ``allowed``, while active."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.allowed: str | None = None
        self.violations: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        root, allowed = self.root, self.allowed
        if root is None or allowed is None or event not in WATCHED_EVENTS or not args:
            return
        target = args[0]
        if isinstance(target, bytes):
            target = os.fsdecode(target)
        if not isinstance(target, str):
            return  # a file descriptor
        path = os.path.normpath(os.path.abspath(target))
        inside_root = os.path.commonpath([root, path]) == root
        inside_storage = os.path.commonpath([allowed, path]) == allowed
        if inside_root and not inside_storage:
            with self._lock:
                self.violations.append((event, path))

    @contextmanager
    def watching(self, root: str, allowed: str) -> Iterator[None]:
        self.violations.clear()
        self.root, self.allowed = root, allowed
        try:
            yield
        finally:
            self.root = self.allowed = None


WATCH = FileAccessWatch()
_installed = False


@pytest.fixture(scope="module")
def watch() -> FileAccessWatch:
    global _installed
    if not _installed:  # audit hooks cannot be removed: install one for the whole run
        sys.addaudithook(WATCH)
        _installed = True
    return WATCH


@dataclass
class World:
    root: Path
    storage_dir: Path
    files: dict[tuple[str, str], bytes] = field(repr=False)  # (storage, id) -> content
    etags: list[str] = field(repr=False)
    app: DepotMiddleware = field(repr=False)


@pytest.fixture
def world(tmp_path: Path) -> World:
    root = tmp_path.resolve()
    storage_dir = root / "storage"
    (root / "secret.txt").write_bytes(TOKEN)
    (root / "storage-secret").mkdir()
    (root / "storage-secret" / "data").write_bytes(TOKEN)
    (root / ABSENT_ID).write_bytes(TOKEN)
    disk = DepotManager.configure("disk", {"depot.storage_path": str(storage_dir)})
    memory = DepotManager.configure(
        "files", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    DepotManager.alias("pics", "files")
    files: dict[tuple[str, str], bytes] = {}
    for storage_name, storage in (("disk", disk), ("files", memory)):
        for size, content_type in ((0, "text/plain"), (5000, "text/html"), (70_000, None)):
            data = content(size)
            file_id = storage.create(data, filename="f.html", content_type=content_type)
            files[(storage_name, file_id)] = data
    private: FileStorage = DepotManager.configure(
        "private", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    # 0xff appears in no other file (content() uses bytes 0..250): its bytes are recognisable
    files[("private", private.create(PRIVATE))] = PRIVATE
    etags = []
    for (storage_name, file_id), _ in files.items():
        with DepotManager.get(storage_name).get(file_id) as stored:
            assert stored.checksum is not None
            etags.append(stored.checksum)
    app = DepotMiddleware(
        secret=SECRET,
        chunk_size=4096,
        max_ranges=8,
        policies={"private": ServingPolicy(require_signature=True)},
    )
    return World(root, storage_dir, files, etags, app)


def test_the_watch_sees_accesses_outside_the_storage(world: World, watch: FileAccessWatch) -> None:
    with watch.watching(str(world.root), str(world.storage_dir)):
        (world.storage_dir / "inside").write_bytes(b"")
        assert not watch.violations
        assert (world.root / "secret.txt").read_bytes() == TOKEN
        os.listdir(world.root / "storage-secret")
    assert [event for event, _ in watch.violations] == ["open", "os.listdir"]


# -- strategies -----------------------------------------------------------------------------
LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
TRICKY_SEGMENTS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    "..%2f..%2fsecret.txt",
    "%252e%252e",
    "..\\..\\secret.txt",
    "secret.txt",
    "storage-secret",
    "data",
    ABSENT_ID,
    "\x00",
    "%00",
    ABSENT_ID + "\x00",
    "disk",
    "files",
    "pics",
    "private",
    "nosuch",
    "",
    "/",
    "//",
    "~",
    "storage",
]


def segments(world_ids: list[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(TRICKY_SEGMENTS + world_ids).map(lambda s: s.encode("utf-8")),
        st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=20),
        st.text(alphabet="./%2eEf\\\x00", max_size=24).map(str.encode),
        st.integers(min_value=200, max_value=6000).map(lambda n: b"a" * n),
    )


def raw_paths(world_ids: list[str]) -> st.SearchStrategy[bytes]:
    prefixes = st.sampled_from([b"/depot/", b"/depot", b"/", b"/depot/disk/", b"//depot/"])
    parts = st.lists(segments(world_ids), max_size=5)
    return st.builds(lambda p, s: p + b"/".join(s), prefixes, parts)


def range_values() -> st.SearchStrategy[str]:
    bound = st.one_of(st.none(), st.integers(min_value=0, max_value=80_000))
    spec = st.one_of(
        st.builds(lambda a, b: f"{'' if a is None else a}-{'' if b is None else b}", bound, bound),
        st.integers(min_value=0, max_value=90_000).map(lambda n: f"-{n}"),
    )
    structured = st.lists(spec, min_size=1, max_size=12).map(lambda s: "bytes=" + ",".join(s))
    return st.one_of(structured, st.text(LATIN1, max_size=60))


def etag_values(world_etags: list[str]) -> st.SearchStrategy[str]:
    tag = st.one_of(
        st.sampled_from(world_etags).map(lambda e: f'"{e}"'),
        st.sampled_from(world_etags).map(lambda e: f'W/"{e}"'),
        st.just("*"),
        st.text(LATIN1, max_size=30),
    )
    return st.lists(tag, min_size=1, max_size=4).map(", ".join)


def date_values() -> st.SearchStrategy[str]:
    dates = st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(timezone.utc),
    )
    return st.one_of(dates.map(http_date), st.text(LATIN1, max_size=40))


def header_sets(world: World) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "Range": range_values(),
            "If-None-Match": etag_values(world.etags),
            "If-Match": etag_values(world.etags),
            "If-Modified-Since": date_values(),
            "If-Unmodified-Since": date_values(),
            "If-Range": st.one_of(etag_values(world.etags), date_values()),
        },
    )


QUERIES = st.one_of(
    st.just(b""),
    st.binary(max_size=40),
    st.builds(
        lambda e, s: b"expires=" + e + b"&signature=" + s,
        st.binary(max_size=15),
        st.binary(max_size=70),
    ),
)
METHODS = st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "OPTIONS", "DELETE"])


# -- properties -----------------------------------------------------------------------------
def check_response(
    world: World, method: str, raw_path: bytes, status: int, headers: Any, body: bytes
) -> None:
    assert status < 500, (raw_path, status, body[:200])
    assert TOKEN not in body, raw_path
    if method == "HEAD" or status == 304:
        assert body == b""
    elif "Content-Length" in headers:
        assert int(headers["Content-Length"]) == len(body)
    assert headers.get("X-Content-Type-Options") == "nosniff"
    if status in (200, 206):
        # whatever was served is (part of) a stored file
        served_from = [data for data in world.files.values() if body in data]
        assert served_from, raw_path
    if status == 200 and method == "GET":
        assert body in world.files.values()
    if status == 416:
        # only a non-empty file can lack what a range asks for: an empty one ignores Range
        assert headers["Content-Range"] != "bytes */0", raw_path
    # the storage that requires signatures never serves a byte: no example can forge one
    assert b"\xff" not in body or status not in (200, 206)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_in_process(
    world: World, watch: FileAccessWatch, data: st.DataObject
) -> None:
    ids = [file_id for _, file_id in world.files]
    raw_path = data.draw(raw_paths(ids), label="path")
    headers = data.draw(header_sets(world), label="headers")
    method = data.draw(METHODS, label="method")
    query = data.draw(QUERIES, label="query")
    environ = {
        "PATH_INFO": raw_path.decode("latin-1"),  # what a server passes after %-decoding
        "QUERY_STRING": query.decode("latin-1"),
    }
    client = Client(world.app)
    with watch.watching(str(world.root), str(world.storage_dir)):
        response = client.open(method=method, headers=headers, environ_overrides=environ)
        body = response.get_data()
        response.close()
    assert not watch.violations, watch.violations
    check_response(world, method, raw_path, response.status_code, response.headers, body)


def call_asgi(
    app: asgi.ASGIApp, method: str, path: str, query: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """Run one request through an ASGI application; return status, headers and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1234),
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    asyncio.run(app(scope, receive, send))
    start = messages[0]
    response_headers = {
        k.decode("latin-1").title(): v.decode("latin-1") for k, v in start["headers"]
    }
    body = b"".join(m.get("body", b"") for m in messages[1:])
    assert messages[-1].get("more_body", False) is False
    return start["status"], response_headers, body


@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_in_process_asgi(
    world: World, watch: FileAccessWatch, data: st.DataObject
) -> None:
    ids = [file_id for _, file_id in world.files]
    raw_path = data.draw(raw_paths(ids), label="path")
    headers = data.draw(header_sets(world), label="headers")
    method = data.draw(METHODS, label="method")
    query = data.draw(QUERIES, label="query")
    # what a server passes: the %-decoded path, as UTF-8 text (invalid sequences replaced)
    path = raw_path.decode("utf-8", "replace")
    front = asgi.DepotMiddleware.from_server(world.app.server)
    with watch.watching(str(world.root), str(world.storage_dir)):
        status, response_headers, body = call_asgi(front, method, path, query, headers)
    assert not watch.violations, watch.violations
    check_response(world, method, raw_path, status, response_headers, body)


def encode_for_request_line(raw_path: bytes) -> str:
    # '%' stays literal: '%2e%2e' reaches the server as such and is decoded by it
    return quote(raw_path, safe="/%.:@!$&'()*+,;=-_~") or "/"


@settings(
    max_examples=max(1, EXAMPLES // 7),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_through_a_real_server(
    world: World, watch: FileAccessWatch, served: Served, data: st.DataObject
) -> None:
    served.mount(world.app)
    ids = [file_id for _, file_id in world.files]
    raw_path = data.draw(raw_paths(ids), label="path")
    headers = data.draw(header_sets(world), label="headers")
    method = data.draw(METHODS, label="method")
    query = data.draw(QUERIES, label="query")
    target = encode_for_request_line(raw_path)
    if not target.startswith("/"):
        target = "/" + target
    if query:
        target += "?" + quote(query, safe="=&%")
    connection = http.client.HTTPConnection(served.host, served.port, timeout=30)
    try:
        with watch.watching(str(world.root), str(world.storage_dir)):
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value.encode("latin-1"))
            connection.endheaders()
            response = connection.getresponse()
            body = response.read()
    finally:
        connection.close()
    assert not watch.violations, watch.violations
    check_response(world, method, raw_path, response.status, response.headers, body)
