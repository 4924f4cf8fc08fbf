"""examples/flask_app.py under waitress, on PostgreSQL: upload through the form, list,
download with Range, delete; and the same round trip in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from sa_depot.io.local import LocalFileStorage
from tests.cli.chromium import Browser
from tests.examples.conftest import Example
from tests.examples.helpers import random_bytes, upload_and_download_in_the_browser


def listed(example: Example) -> dict[str, str]:
    """filename -> link of every document the page lists."""
    page = requests.get(example.server.url("/"), timeout=30).text
    return {name: href for href, name in re.findall(r'<a href="([^"]+)">([^<]*)</a>', page)}


def rows(example: Example) -> int:
    engine = sa.create_engine(example.database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM flask_documents")).scalar())
    finally:
        engine.dispose()


def test_upload_list_download_with_range_and_delete(flask_example: Example) -> None:
    data = random_bytes(70_000, seed=1)
    sent = requests.post(
        flask_example.server.url("/"),
        files={"file": ("report.bin", data, "application/octet-stream")},
        allow_redirects=False,
        timeout=30,
    )
    assert sent.status_code == 303
    link = listed(flask_example)["report.bin"]
    assert re.fullmatch(r"/flaskstore/flaskstore/[0-9a-f-]{36}", link)
    storage = LocalFileStorage(str(flask_example.files))
    assert len(storage.list()) == 1

    whole = requests.get(flask_example.server.url(link), timeout=30)
    assert whole.content == data
    assert whole.headers["Content-Disposition"] == 'attachment; filename="report.bin"'
    part = requests.get(
        flask_example.server.url(link), headers={"Range": "bytes=1000-1999"}, timeout=30
    )
    assert (part.status_code, part.content) == (206, data[1000:2000])
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"

    page = requests.get(flask_example.server.url("/"), timeout=30).text
    (action,) = re.findall(r'action="(/\d+/delete)"', page)
    assert requests.post(flask_example.server.url(action), timeout=30).status_code == 200
    assert listed(flask_example) == {}
    assert rows(flask_example) == 0
    assert storage.list() == []  # the row's file went with it
    assert requests.get(flask_example.server.url(link), timeout=30).status_code == 404


@pytest.mark.browser
def test_a_file_uploaded_in_the_browser_comes_back_identical(
    flask_example: Example, browser: Browser, tmp_path: Path
) -> None:
    upload = tmp_path / "from the browser.bin"
    upload.write_bytes(random_bytes(50_000, seed=2))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    got = upload_and_download_in_the_browser(
        browser, flask_example.server.url("/"), upload, downloads
    )
    assert got == upload.read_bytes()
