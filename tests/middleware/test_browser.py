"""A real browser (Debian's headless chromium) uses files served by the middleware.

* an uploaded PNG displays in an ``<img>`` (the page reports its decoded size);
* a WAV file starts playing from a seek point: the browser asks for the bytes after the seek
  point with a Range request, and the element reaches ``currentTime`` near that point.

To make the seek need a Range request, the first (from byte 0) response for the audio file is
streamed slowly, so the browser cannot have the whole file yet when it seeks.

Outside CI a missing chromium skips these tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import struct
import subprocess
import threading
import time
import wave
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sa_depot.io.interfaces import FileStorage
from sa_depot.middleware import DepotMiddleware
from tests.browser import HEADLESS_FLAGS, find_chromium
from tests.databases import in_ci
from tests.middleware.conftest import Served

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

pytestmark = pytest.mark.browser

MakeMiddleware = Callable[..., DepotMiddleware]
IMAGE_SIZE = (37, 23)
AUDIO_SECONDS = 60
SEEK_TO = 50.0
SAMPLE_RATE = 44_100
REPORT_TIMEOUT = 90.0


def require_chromium() -> str:
    path = find_chromium()
    if path:
        return path
    message = "headless chromium is not installed (apt-get install chromium)"
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def make_png(width: int, height: int) -> bytes:
    """A small RGB PNG, built with zlib: a horizontal gradient."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00"
        + bytes(channel for x in range(width) for channel in (x * 6 % 256, y * 9 % 256, 128))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def make_wav(seconds: int) -> bytes:
    """A 441 Hz stereo tone, 16-bit PCM: about 176 KB per second."""
    period = SAMPLE_RATE // 441  # 100 samples: a whole number of periods per second
    frames = b"".join(
        struct.pack("<hh", value, value)
        for value in (int(8000 * math.sin(2 * math.pi * i / period)) for i in range(period))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(frames * (SAMPLE_RATE // period * seconds))
    return buffer.getvalue()


@dataclass
class Exchange:
    method: str
    path: str
    range: str | None
    status: str = ""
    content_type: str = ""


@dataclass
class PageSite:
    """The test's web application: the page, the report endpoint, and the middleware."""

    middleware: DepotMiddleware
    page: bytes
    slow_prefix: str
    exchanges: list[Exchange] = field(default_factory=list)
    report: dict[str, Any] | None = None
    reported: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/":
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(self.page))),
                ],
            )
            return [self.page]
        if path == "/report":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            self.report = json.loads(body)
            self.reported.set()
            start_response("204 No Content", [])
            return []
        exchange = Exchange(environ["REQUEST_METHOD"], path, environ.get("HTTP_RANGE"))
        with self.lock:
            self.exchanges.append(exchange)

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], *args: Any
        ) -> Any:
            exchange.status = status
            exchange.content_type = dict(headers).get("Content-Type", "")
            return start_response(status, headers, *args)

        body_iter = self.middleware(environ, recording_start_response)
        starts_at_zero = exchange.range is None or exchange.range.replace(" ", "") == "bytes=0-"
        if path.startswith(self.slow_prefix) and starts_at_zero:
            return _slowly(body_iter)
        return body_iter


def _slowly(body: Iterable[bytes]) -> Iterator[bytes]:
    """Stream ``body`` at about 160 KB/s (16 KB every 0.1 s)."""
    try:
        for chunk in body:
            for start in range(0, len(chunk), 16 * 1024):
                yield chunk[start : start + 16 * 1024]
                time.sleep(0.1)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>sa_depot browser test</title></head>
<body>
<img id="picture" src="{image_url}" alt="uploaded">
<audio id="sound" src="{audio_url}" preload="auto" muted></audio>
<script>
const result = {{image: null, audio: {{}}, errors: []}};
let sent = false;
function send() {{
  if (sent) return;
  sent = true;
  fetch("/report", {{method: "POST", body: JSON.stringify(result)}});
}}
function maybeSend() {{
  if (result.image !== null && result.audio.done) send();
}}
const picture = document.getElementById("picture");
function imageDone() {{
  result.image = {{complete: picture.complete, width: picture.naturalWidth,
                   height: picture.naturalHeight}};
  maybeSend();
}}
if (picture.complete) imageDone(); else {{
  picture.addEventListener("load", imageDone);
  picture.addEventListener("error", () => {{ result.errors.push("image error"); imageDone(); }});
}}
const sound = document.getElementById("sound");
sound.addEventListener("loadedmetadata", () => {{
  result.audio.duration = sound.duration;
  sound.currentTime = {seek_to};
}});
sound.addEventListener("seeked", () => {{
  result.audio.seekedAt = sound.currentTime;
  sound.play().catch((e) => result.errors.push("play: " + e));
}});
sound.addEventListener("timeupdate", () => {{
  if (result.audio.seekedAt !== undefined && sound.readyState >= 2 && !sound.paused
      && sound.currentTime >= {seek_to}) {{
    result.audio.currentTime = sound.currentTime;
    result.audio.readyState = sound.readyState;
    result.audio.done = true;
    maybeSend();
  }}
}});
sound.addEventListener("error", () => {{
  result.errors.push("audio error " + (sound.error && sound.error.code));
  result.audio.done = true;
  maybeSend();
}});
setTimeout(() => {{
  result.errors.push("timed out: readyState=" + sound.readyState + " currentTime="
                     + sound.currentTime + " paused=" + sound.paused);
  result.audio.done = true;
  send();
}}, {page_timeout_ms});
</script>
</body></html>
"""


@pytest.fixture
def chromium() -> str:
    return require_chromium()


def run_chromium(chromium: str, url: str, profile: Path, site: PageSite) -> dict[str, Any]:
    command = [
        chromium,
        *HEADLESS_FLAGS,
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        url,
    ]
    log_path = profile.parent / "chromium.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            reported = site.reported.wait(REPORT_TIMEOUT)
        finally:
            _stop(process)
    if not reported:
        tail = log_path.read_bytes()[-3000:].decode(errors="replace")
        pytest.fail(f"the page never reported; requests: {site.exchanges}\nchromium:\n{tail}")
    assert site.report is not None
    return site.report


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the browser we started, and its helper processes (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.mark.wsgi_only  # the page's own site is a WSGI application around the middleware
def test_image_displays_and_audio_plays_from_a_seek_point(
    chromium: str,
    served: Served,
    make_middleware: MakeMiddleware,
    memory: FileStorage,
    local: FileStorage,
    tmp_path: Path,
) -> None:
    image_id = local.create(make_png(*IMAGE_SIZE), filename="picture.png")
    wav = make_wav(AUDIO_SECONDS)
    audio_id = memory.create(wav, filename="tone.wav", content_type="audio/wav")
    middleware = make_middleware()
    image_url = middleware.url_for(f"disk/{image_id}", filename="picture.png")
    audio_url = middleware.url_for(f"files/{audio_id}", filename="tone.wav")
    page = PAGE.format(
        image_url=image_url,
        audio_url=audio_url,
        seek_to=SEEK_TO,
        page_timeout_ms=int((REPORT_TIMEOUT - 15) * 1000),
    )
    site = PageSite(middleware, page.encode(), slow_prefix=f"/depot/files/{audio_id}")
    app: WSGIApplication = site
    served.mount(app)

    report = run_chromium(chromium, served.url("/"), tmp_path / "profile", site)

    assert report["errors"] == [], (report, site.exchanges)
    assert report["image"] == {"complete": True, "width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1]}
    audio = report["audio"]
    assert audio["duration"] == pytest.approx(AUDIO_SECONDS, abs=0.5)
    assert audio["readyState"] >= 2
    assert SEEK_TO <= audio["currentTime"] < AUDIO_SECONDS
    image_exchanges = [e for e in site.exchanges if e.path.startswith(f"/depot/disk/{image_id}")]
    assert image_exchanges[0].status.startswith("200 ")
    assert image_exchanges[0].content_type == "image/png"
    audio_exchanges = [e for e in site.exchanges if e.path.startswith(f"/depot/files/{audio_id}")]
    seek_byte = int(SEEK_TO * SAMPLE_RATE * 4)
    seeking = [
        e
        for e in audio_exchanges
        if e.range and e.range.startswith("bytes=") and _range_start(e.range) >= seek_byte // 2
    ]
    assert seeking, audio_exchanges
    assert all(e.status.startswith("206 ") for e in seeking), seeking
    assert all(e.content_type == "audio/wav" for e in seeking), seeking


def _range_start(header: str) -> int:
    first = header.split("=", 1)[1].split(",")[0].strip()
    start = first.split("-", 1)[0]
    return int(start) if start.isdigit() else -1
