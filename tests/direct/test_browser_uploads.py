"""Direct uploads in a real browser (headless Chromium) against SeaweedFS: the example
application's page (examples/direct_uploads.py, run by waitress) uploads a 20 MiB file in
presigned multipart parts straight to the bucket, with a progress bar, then submits its form;
and uploads abandoned (one complete but never submitted, one stalled halfway) are removed by
the collector."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from sa_depot.collector import collect
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.io.boto3 import S3Storage
from sa_depot.manager import DepotManager
from tests.cli.chromium import Browser, Page
from tests.direct.conftest import configure_s3, keys_under, multipart_uploads
from tests.examples.helpers import random_bytes
from tests.s3.conftest import MiB, remove_prefix
from tests.s3server import SeaweedS3
from tests.webservers import ServerProcess, server_process


@dataclass
class App:
    server: ServerProcess
    storage: S3Storage  # the example's storage, as this process sees it
    engine: sa.Engine


@pytest.fixture
def cors_bucket(s3_server: SeaweedS3) -> Iterator[str]:
    """A bucket whose CORS rule lets any page PUT parts and read their ETag."""
    bucket = s3_server.new_bucket()
    s3_server.client().put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": ["*"],
                    "AllowedMethods": ["GET", "PUT", "POST"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                }
            ]
        },
    )
    yield bucket
    s3_server.remove_bucket(bucket)


@pytest.fixture
def app(s3_server: SeaweedS3, cors_bucket: str, tmp_path: Path) -> Iterator[App]:
    prefix = f"browser-{os.urandom(6).hex()}/"
    database = tmp_path / "videos.sqlite"
    env = {
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "S3_BUCKET": cors_bucket,
        "S3_PREFIX": prefix,
        "S3_ACCESS_KEY_ID": s3_server.access_key_id,
        "S3_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        "UPLOAD_SECRET": os.urandom(32).hex(),
        "DATABASE_URL": f"sqlite:///{database}",
    }
    argv = ["waitress", "--listen=127.0.0.1:{port}", "examples.direct_uploads:app"]
    with server_process(argv, tmp_path / "waitress.log", env=env) as server:
        storage = configure_s3(s3_server, cors_bucket, prefix)
        engine = sa.create_engine(f"sqlite:///{database}")
        try:
            yield App(server, storage, engine)
        finally:
            engine.dispose()
            remove_prefix(s3_server, cors_bucket, prefix)


#: Records every value the page gives its progress bar.
WATCH_PROGRESS = """(() => {
  window.progressSeen = [];
  const bar = document.getElementById("progress");
  const own = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
  Object.defineProperty(bar, "value", {
    get() { return own.get.call(this); },
    set(v) { window.progressSeen.push(v); own.set.call(this, v); },
  });
})()"""


def open_form(browser: Browser, url: str, title: str) -> Page:
    page = browser.new_page()
    page.navigate(url)
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('file')")
    page.evaluate(f"document.querySelector('input[name=title]').value = {json.dumps(title)}")
    page.evaluate(WATCH_PROGRESS)
    return page


def choose_file(page: Page, path: Path) -> None:
    page.call("DOM.setFileInputFiles", {"files": [str(path)], "objectId": page.element("#file")})


def test_a_20_mib_file_goes_to_s3_in_parts_then_the_form_attaches_it(
    app: App, browser: Browser, tmp_path: Path
) -> None:
    content = random_bytes(20 * MiB, seed=18)
    upload = tmp_path / "holiday.mp4"
    upload.write_bytes(content)
    page = open_form(browser, app.server.url("/"), "Holiday")
    choose_file(page, upload)
    status = page.wait_for(
        "['uploaded', 'failed'].some(s => document.getElementById('status').textContent"
        ".startsWith(s)) && document.getElementById('status').textContent",
        timeout=180,
    )
    assert status == "uploaded"
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 100
    assert len([v for v in seen if 0 < v < 100]) >= 3  # it moved as each of 4 parts went
    assert seen == sorted(seen)
    # the object is staged, not attached yet: no row
    with app.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM direct_videos")).scalar() == 0
    page.evaluate("document.getElementById('submit').click()")
    page.wait_for("document.getElementById('videos').textContent.includes('Holiday')")

    with app.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT title, content FROM direct_videos")).all()
    assert len(rows) == 1 and rows[0][0] == "Holiday"
    descriptor = json.loads(rows[0][1])
    assert descriptor["filename"] == "holiday.mp4"
    assert descriptor["content_length"] == len(content)
    assert descriptor["checksum"] == hashlib.sha256(content).hexdigest()
    with DepotManager.get_file(descriptor["path"]) as stored:
        assert stored.read() == content  # byte-identical
    # the row holds the object the browser uploaded, in place; no upload is left open
    assert keys_under(app.storage) == {descriptor["file_id"]}
    assert multipart_uploads(app.storage) == []


def test_abandoned_uploads_are_removed_by_the_collector(
    app: App, browser: Browser, tmp_path: Path
) -> None:
    # an upload completed but never submitted: the user closed the tab
    finished = tmp_path / "finished.bin"
    finished.write_bytes(random_bytes(6 * MiB, seed=1))
    page = open_form(browser, app.server.url("/"), "Never saved")
    choose_file(page, finished)
    page.wait_for("document.getElementById('status').textContent === 'uploaded'", timeout=120)
    page.navigate("about:blank")
    # an upload stalled halfway: the third of four parts never leaves the browser
    stalled = tmp_path / "stalled.bin"
    stalled.write_bytes(random_bytes(20 * MiB, seed=2))
    page = open_form(browser, app.server.url("/"), "Halfway")
    page.call("Fetch.enable", {"patterns": [{"urlPattern": "*partNumber=3*"}]})
    choose_file(page, stalled)
    browser.wait_for_event("Fetch.requestPaused", timeout=120)
    assert page.evaluate("window.progressSeen.filter(v => v > 0 && v < 100).length") > 0
    page.call("Page.navigate", {"url": "about:blank"})

    storage = app.storage
    staged = keys_under(storage)
    assert len(staged) == 1  # the finished upload's object
    (open_upload,) = multipart_uploads(storage)
    upload_id = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)[
        "Uploads"
    ][0]["UploadId"]
    parts = storage.client.list_parts(Bucket=storage.bucket, Key=open_upload, UploadId=upload_id)
    assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2]

    videos = sa.Table(
        "direct_videos",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200)),
        sa.Column("content", UploadedFileField()),
    )
    young = collect(app.engine, videos, grace=timedelta(hours=1))
    assert young.orphans == [] and young.incomplete == []
    time.sleep(1.5)  # S3 times have a resolution of a second
    report = collect(app.engine, videos, grace=timedelta(0))
    assert report.orphans == [f"default/{next(iter(staged))}"]
    assert report.incomplete == [open_upload]
    assert keys_under(storage) == set()
    assert multipart_uploads(storage) == []
