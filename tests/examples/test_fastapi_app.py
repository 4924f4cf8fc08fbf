"""examples/fastapi_app.py under uvicorn, on PostgreSQL through asyncpg: upload an UploadFile,
list, download with Range, delete; and the same round trip in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from sa_depot.io.local import LocalFileStorage
from tests.cli.chromium import Browser
from tests.examples.conftest import Example
from tests.examples.helpers import random_bytes, upload_and_download_in_the_browser

PUBLIC = {"url", "filename", "content_type", "content_length", "checksum"}


def test_upload_list_download_with_range_and_delete(fastapi_example: Example) -> None:
    server = fastapi_example.server
    data = random_bytes(70_000, seed=3)
    created = requests.post(
        server.url("/documents"),
        files={"file": ("data.bin", data, "application/octet-stream")},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    document = created.json()
    content = document["content"]
    assert set(content) == PUBLIC  # no internal keys
    assert (content["filename"], content["content_length"]) == ("data.bin", len(data))
    assert re.fullmatch(r"/files/files/[0-9a-f-]{36}", content["url"])
    assert requests.get(server.url("/documents"), timeout=30).json() == [document]
    storage = LocalFileStorage(str(fastapi_example.files))
    assert len(storage.list()) == 1

    whole = requests.get(server.url(content["url"]), timeout=30)
    assert whole.content == data
    assert whole.headers["ETag"] == f'"{content["checksum"]}"'
    part = requests.get(server.url(content["url"]), headers={"Range": "bytes=-100"}, timeout=30)
    assert (part.status_code, part.content) == (206, data[-100:])
    assert content["url"] in requests.get(server.url("/"), timeout=30).text

    deleted = requests.delete(server.url(f"/documents/{document['id']}"), timeout=30)
    assert deleted.status_code == 204
    assert requests.get(server.url("/documents"), timeout=30).json() == []
    assert storage.list() == []  # the row's file went with it, after the commit
    assert requests.get(server.url(content["url"]), timeout=30).status_code == 404


@pytest.mark.browser
def test_a_file_uploaded_in_the_browser_comes_back_identical(
    fastapi_example: Example, browser: Browser, tmp_path: Path
) -> None:
    upload = tmp_path / "from the browser.bin"
    upload.write_bytes(random_bytes(50_000, seed=4))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    got = upload_and_download_in_the_browser(
        browser, fastapi_example.server.url("/"), upload, downloads
    )
    assert got == upload.read_bytes()
