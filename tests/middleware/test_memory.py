"""Serving streams in chunks: peak memory does not grow with the file (design guarantee 8)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest

from sa_depot.io.interfaces import FileStorage
from sa_depot.middleware import DepotMiddleware

SIZE = 32 * 1024 * 1024
CHUNK = 64 * 1024
#: Far below the file size, well above a few chunks and the interpreter's own noise.
PEAK_LIMIT = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def big_content() -> bytes:
    return bytes(range(256)) * (SIZE // 256)


def drain(app: DepotMiddleware, path: str, headers: dict[str, str]) -> tuple[str, int, int]:
    """Run one request, discarding the body as it streams; return status, bytes, peak memory."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        **{"HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()},
    }
    statuses: list[str] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
        statuses.append(status)
        return None

    tracemalloc.start()
    try:
        body: Iterable[bytes] = app(environ, start_response)
        received = 0
        try:
            for chunk in body:
                received += len(chunk)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return statuses[0], received, peak


@pytest.mark.parametrize(
    ("range_header", "expected_status", "expected_bytes"),
    [
        (None, "200", SIZE),
        ("bytes=1000-", "206", SIZE - 1000),
        ("bytes=0-9999999,20000000-29999999", "206", None),  # multipart: parts + headers
    ],
)
def test_peak_memory_stays_flat(
    local: FileStorage,
    big_content: bytes,
    range_header: str | None,
    expected_status: str,
    expected_bytes: int | None,
) -> None:
    file_id = local.create(big_content, filename="big.bin", content_type="application/octet-stream")
    app = DepotMiddleware(chunk_size=CHUNK)
    headers = {"Range": range_header} if range_header else {}
    status, received, peak = drain(app, f"/depot/disk/{file_id}", headers)
    assert status.startswith(expected_status)
    if expected_bytes is not None:
        assert received == expected_bytes
    else:
        assert received > 20_000_000
    assert peak < PEAK_LIMIT, f"peak {peak} bytes while serving {received} bytes"
