"""The demo in a real browser: ``sa-depot demo`` in its own process, driven by headless
Chromium: the upload form, drag and drop with its progress bar, the size limit checked before
an upload, thumbnails and the full-size view, the note on an image without thumbnail, the
download link, the delete button, and the layout at desktop and phone widths (screenshots in
the test's temporary folder, or in ``$SA_DEPOT_SCREENSHOTS`` when set)."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from sa_depot.io.local import LocalFileStorage
from tests.cli.chromium import Browser, Page
from tests.cli.servers import RunningServer, cli_server

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def start_demo(tmp_path: Path, *options: str) -> Iterator[RunningServer]:
    data_dir = tmp_path / "demo-data"
    args = ["demo", "--port", "0", "--data-dir", str(data_dir), *options]
    with cli_server(args, cwd=tmp_path) as server:
        yield server


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningServer]:
    yield from start_demo(tmp_path)


def photo(path: Path, size: tuple[int, int] = (640, 480), noise: bool = False) -> bytes:
    """A PNG with a gradient (or random noise, which does not compress: a large file)."""
    image = Image.new("RGB", size)
    if noise:
        randomness = random.Random(12)
        image.frombytes(randomness.randbytes(size[0] * size[1] * 3))
    else:
        image.putdata(
            [(x % 256, y % 256, (x + y) % 256) for y in range(size[1]) for x in range(size[0])]
        )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def open_demo(page: Page, server: RunningServer) -> None:
    page.navigate(server.base_url + "/")
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('upload-form')")


def choose_and_upload(page: Page, *paths: Path) -> None:
    page.call(
        "DOM.setFileInputFiles",
        {"files": [str(path) for path in paths], "objectId": page.element("#files")},
    )
    page.evaluate("document.getElementById('upload-button').click()")


def rows(page: Page) -> int:
    return int(page.evaluate("document.querySelectorAll('.attachment').length"))


def text(page: Page, selector: str) -> str:
    return str(page.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"))


def screenshot(page: Page, path: Path) -> Path:
    data = page.call("Page.captureScreenshot", {"format": "png"})["data"]
    path.write_bytes(base64.b64decode(data))
    if os.environ.get("SA_DEPOT_SCREENSHOTS"):
        keep = Path(os.environ["SA_DEPOT_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / path.name)
    return path


def test_upload_see_thumbnail_download_and_delete_an_image(
    browser: Browser, demo: RunningServer, tmp_path: Path
) -> None:
    original = photo(tmp_path / "sunset.png")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.call(
        "Browser.setDownloadBehavior",
        {"behavior": "allowAndName", "downloadPath": str(downloads), "eventsEnabled": True},
    )
    page = browser.new_page()
    open_demo(page, demo)
    assert page.evaluate("!!document.getElementById('empty')")

    # upload through the form (the page's script sends it, then shows the list again)
    choose_and_upload(page, tmp_path / "sunset.png")
    page.wait_for("document.querySelectorAll('.attachment').length === 1")
    assert "Uploaded sunset.png" in text(page, ".notice")
    assert page.evaluate("location.pathname + location.search") == "/"  # no message in the URL

    # the listing shows the thumbnail: an <img> the browser decoded, 640x480 fitted in 128x128
    size = page.wait_for(
        "(() => { const img = document.querySelector('.attachment img.thumb');"
        " return img && img.complete && img.naturalWidth > 0"
        " ? [img.naturalWidth, img.naturalHeight] : null })()"
    )
    assert size == [128, 96]
    files = page.evaluate("document.querySelector('.attachment').dataset.files").split()
    assert len(files) == 2  # the image and its thumbnail
    storage = LocalFileStorage(tmp_path / "demo-data" / "files")
    file_ids = [path.split("/", 1)[1] for path in files]
    assert all(storage.exists(file_id) for file_id in file_ids)

    # download it through the link: the bytes are the uploaded ones
    page.evaluate("document.querySelector('a.download').click()")
    started = browser.wait_for_event("Browser.downloadWillBegin")
    assert started["suggestedFilename"] == "sunset.png"
    browser.wait_for_event(
        "Browser.downloadProgress",
        lambda event: event.get("guid") == started["guid"] and event.get("state") == "completed",
    )
    assert (downloads / started["guid"]).read_bytes() == original

    # delete it: the row goes, and after the commit its files (original and thumbnail) too
    page.evaluate("document.querySelector('button.delete').click()")
    page.wait_for("!!document.getElementById('empty')")
    assert "Deleted sunset.png and its 2 stored files" in text(page, ".notice")
    assert not any(storage.exists(file_id) for file_id in file_ids)
    assert storage.list() == []
    assert "holds 0 files" in text(page, "#storage-count")


def drop(page: Page, selector: str, path: Path) -> None:
    """Drag ``path`` from the desktop onto the element, as a user does."""
    box = page.evaluate(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
        ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2] })()"
    )
    data = {"items": [], "files": [str(path)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        page.call("Input.dispatchDragEvent", {"type": kind, "x": box[0], "y": box[1], "data": data})


def test_drag_and_drop_progress_full_size_view_and_layouts(
    browser: Browser, demo: RunningServer, tmp_path: Path
) -> None:
    photo(tmp_path / "large photo.png", (800, 600), noise=True)  # about 1.4 MB
    photo(tmp_path / "sunset.png")
    (tmp_path / "notes.txt").write_bytes(b"plain notes")
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo(tmp_path / "whole.png", (50, 50))[:60])  # a PNG header, no image

    page = browser.new_page()
    page.call("Emulation.setDeviceMetricsOverride", DESKTOP)
    open_demo(page, demo)

    # a slow connection, so that the progress bar can be seen moving
    page.call("Network.enable")
    page.call(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 256_000},
    )
    drop(page, "#upload-form", tmp_path / "large photo.png")
    partial = page.wait_for(
        "(() => { const p = document.getElementById('progress');"
        " return !document.getElementById('progress-box').hidden && p.value > 0"
        " && p.value < 100 ? p.value : 0 })()"
    )
    assert 0 < partial < 100
    assert "of" in text(page, "#progress-text")
    screenshot(page, tmp_path / "demo-uploading-desktop.png")
    page.wait_for("document.querySelectorAll('.attachment').length === 1", timeout=60)
    assert "Uploaded large photo.png" in text(page, ".notice")
    page.call(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )

    choose_and_upload(page, tmp_path / "sunset.png", tmp_path / "notes.txt", broken)
    page.wait_for("document.querySelectorAll('.attachment').length === 4")
    assert "broken.png (no thumbnail: image file is truncated)" in text(page, ".notice")

    # the image that could not be decoded says so, in the list
    note = page.evaluate(
        "(() => { const n = document.querySelector('.attachment .no-thumbnail');"
        " const r = n.getBoundingClientRect(); return [n.textContent, r.width, r.height] })()"
    )
    assert "could not be decoded" in note[0] and note[1] > 0 and note[2] > 0
    assert page.evaluate("document.querySelectorAll('.no-thumbnail').length") == 1

    # the full-size view of an image: its thumbnail opens the original
    page.wait_for(
        "Array.from(document.querySelectorAll('img.thumb')).every(i => i.complete)"
        " && document.querySelectorAll('img.thumb').length === 2"
    )
    page.evaluate("document.querySelector('a.view[data-name=\"large photo.png\"]').click()")
    natural = page.wait_for(
        "(() => { const i = document.getElementById('viewer-image');"
        " return document.getElementById('viewer').open && i.complete && i.naturalWidth"
        " ? [i.naturalWidth, i.naturalHeight] : null })()"
    )
    assert natural == [800, 600]
    assert text(page, "#viewer-caption") == "large photo.png"
    screenshot(page, tmp_path / "demo-full-size-desktop.png")
    page.evaluate("document.getElementById('viewer-close').click()")
    page.wait_for("!document.getElementById('viewer').open")

    shot = screenshot(page, tmp_path / "demo-desktop.png")
    assert Image.open(shot).size == (1280, 800)

    # a 390 px phone: one column, nothing wider than the screen
    page.call("Emulation.setDeviceMetricsOverride", PHONE)
    open_demo(page, demo)
    page.wait_for("document.querySelectorAll('.attachment').length === 4")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, Math.max(...Array.from("
        "document.querySelectorAll('.attachment, #upload-form, footer'),"
        " e => e.getBoundingClientRect().right))]"
    )
    assert widths[0] <= 390 and widths[1] <= 390, widths
    shot = screenshot(page, tmp_path / "demo-phone.png")
    assert Image.open(shot).size == (780, 1688)  # 390x844 at device scale 2


def test_the_size_limit_is_shown_and_checked_before_sending(
    browser: Browser, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    with cli_server(
        ["demo", "--port", "0", "--data-dir", str(tmp_path / "d"), "--max-upload-mib", "1"],
        cwd=tmp_path,
    ) as server:
        page = browser.new_page()
        open_demo(page, server)
        assert "Up to 1 MiB per upload" in text(page, "#limit")

        page.call(
            "DOM.setFileInputFiles",
            {"files": [str(tmp_path / "big.bin")], "objectId": page.element("#files")},
        )
        page.wait_for("!document.getElementById('selection').hidden")
        assert "2.0 MiB: big.bin" in text(page, "#selection")
        page.evaluate("document.getElementById('upload-button').click()")
        refused = page.wait_for("document.querySelector('#messages .error')?.textContent")
        assert "up to 1.0 MiB per upload. Nothing was sent." in refused
        assert LocalFileStorage(tmp_path / "d" / "files").list() == []

        # messages come from the server, never from the URL
        page.navigate(server.base_url + "/?notice=Your+account+is+closed&error=<b>x</b>")
        page.wait_for("document.readyState === 'complete'")
        assert text(page, "#messages") == ""
        assert "Your account" not in page.evaluate("document.body.innerText")
        # the refused upload never reached the server
        server.wait_for_line(r'"GET /\?notice=')
        assert not any("POST /upload" in line for line in server.output)
