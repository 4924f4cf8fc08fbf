"""The ASGI front streams a 32 MiB file with flat memory: uvicorn runs in a process of its own,
the client reads slowly, and the server's peak RSS grows by far less than the file
(design guarantee 8; the server's flow control holds the reads back)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sa_depot.io.local import LocalFileStorage
from tests.middleware.helpers import content
from tests.webservers import ServerProcess, server_process

SIZE = 32 * 1024 * 1024
#: Far below the file size; the interpreter, uvicorn and one chunk in flight stay well under.
GROWTH_LIMIT_KIB = 12 * 1024

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, bytes]:
    directory = tmp_path_factory.mktemp("asgi-memory")
    storage = LocalFileStorage(str(directory), fsync=False)
    data = content(SIZE)
    file_id = storage.create(data, filename="big.bin", content_type="application/octet-stream")
    return directory, file_id, data


@pytest.fixture(scope="module")
def server(
    stored: tuple[Path, str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    directory, file_id, _ = stored
    small = LocalFileStorage(str(directory), fsync=False).create(b"warm-up", filename="a.txt")
    log = tmp_path_factory.mktemp("asgi-memory-log") / "uvicorn.log"
    argv = ["uvicorn", "--factory", "tests.middleware.asgi_app:make", "--port", "{port}"]
    env = {"SA_DEPOT_TEST_STORAGE_PATH": str(directory)}
    with server_process(argv, log, env=env, ready_path=f"/depot/disk/{small}") as running:
        yield running


def slow_download(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Read the body 64 KiB at a time, pausing now and then: a client slower than the disk."""
    digest = hashlib.sha256()
    received = bytearray()
    with requests.get(url, headers=headers, stream=True, timeout=120) as response:
        for index, chunk in enumerate(response.iter_content(64 * 1024)):
            digest.update(chunk)
            received += chunk if len(received) < 4 * 1024 * 1024 else b""
            if index % 32 == 0:
                time.sleep(0.02)
        return response.status_code, digest.digest()


@pytest.mark.parametrize(
    ("range_header", "status", "part"),
    [(None, 200, slice(None)), ("bytes=1000-", 206, slice(1000, None))],
)
def test_peak_rss_of_the_server_stays_flat(
    server: ServerProcess,
    stored: tuple[Path, str, bytes],
    range_header: str | None,
    status: int,
    part: slice,
) -> None:
    _, file_id, data = stored
    server.reset_peak()
    before = server.status()["VmHWM"]
    headers = {"Range": range_header} if range_header else {}
    got_status, digest = slow_download(server.url(f"/depot/disk/{file_id}"), headers)
    assert got_status == status
    assert digest == hashlib.sha256(data[part]).digest()
    growth = server.status()["VmHWM"] - before
    assert growth < GROWTH_LIMIT_KIB, f"the server's peak RSS grew by {growth} KiB"


def test_multipart_ranges_stream_with_flat_memory(
    server: ServerProcess, stored: tuple[Path, str, bytes]
) -> None:
    _, file_id, data = stored
    server.reset_peak()
    before = server.status()["VmHWM"]
    ranges = "bytes=0-9999999,20000000-29999999"
    response = requests.get(
        server.url(f"/depot/disk/{file_id}"), headers={"Range": ranges}, timeout=120
    )
    assert response.status_code == 206
    assert response.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert data[:10_000_000] in response.content
    assert data[20_000_000:30_000_000] in response.content
    growth = server.status()["VmHWM"] - before
    assert growth < GROWTH_LIMIT_KIB, f"the server's peak RSS grew by {growth} KiB"
