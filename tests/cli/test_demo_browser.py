"""The demo in a real browser: ``sa-depot demo`` in its own process, driven by headless
Chromium through the upload form, the thumbnail, the download link and the delete button."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from sa_depot.io.local import LocalFileStorage
from tests.browser import find_chromium
from tests.cli.chromium import Browser, Page
from tests.cli.servers import RunningServer, cli_server
from tests.databases import in_ci

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        message = "chromium is not installed (apt-get install chromium)"
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    running = Browser(executable, tmp_path / "chromium-profile")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningServer]:
    data_dir = tmp_path / "demo-data"
    with cli_server(["demo", "--port", "0", "--data-dir", str(data_dir)], cwd=tmp_path) as server:
        yield server


def photo(path: Path, size: tuple[int, int] = (640, 480)) -> bytes:
    """A PNG with a gradient, so that its content is not trivially compressible."""
    image = Image.new("RGB", size)
    image.putdata(
        [(x % 256, y % 256, (x + y) % 256) for y in range(size[1]) for x in range(size[0])]
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def upload(page: Page, path: Path) -> None:
    page.call("DOM.setFileInputFiles", {"files": [str(path)], "objectId": page.element("#files")})
    page.evaluate("document.getElementById('upload-button').click()")


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
    page.navigate(demo.base_url + "/")
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('empty')")

    # upload through the multipart form
    upload(page, tmp_path / "sunset.png")
    page.wait_for("document.querySelectorAll('tr.attachment').length === 1")
    assert "Uploaded sunset.png" in page.evaluate("document.querySelector('.notice').textContent")

    # the listing shows the thumbnail: an <img> the browser decoded, 640x480 fitted in 128x128
    size = page.wait_for(
        "(() => { const img = document.querySelector('tr.attachment img.thumb');"
        " return img && img.complete && img.naturalWidth > 0"
        " ? [img.naturalWidth, img.naturalHeight] : null })()"
    )
    assert size == [128, 96]
    files = page.evaluate("document.querySelector('tr.attachment').dataset.files").split()
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
    notice = page.evaluate("document.querySelector('.notice').textContent")
    assert "Deleted sunset.png and its 2 stored files" in notice
    assert not any(storage.exists(file_id) for file_id in file_ids)
    assert storage.list() == []
    assert "holds 0 files" in page.evaluate("document.getElementById('storage-count').textContent")
