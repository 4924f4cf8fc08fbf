"""The demo application through a real server (waitress in a thread) and a real HTTP client,
plus the ``sa-depot demo`` command's own checks."""

from __future__ import annotations

import io
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from PIL import Image
from waitress.server import create_server

from sa_depot.demo import DemoApp, make_app
from sa_depot.manager import DepotManager
from tests.cli.conftest import Invoker, assert_user_error
from tests.cli.servers import cli_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Demo:
    def __init__(self, app: DemoApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.http = requests.Session()

    def page(self) -> str:
        response = self.http.get(self.base_url + "/", timeout=10)
        assert response.status_code == 200
        return response.text

    def upload(self, *files: tuple[str, bytes]) -> requests.Response:
        return self.http.post(
            self.base_url + "/upload",
            files=[("files", (name, data)) for name, data in files],
            timeout=30,
        )

    def rows(self) -> list[dict[str, str]]:
        return [
            {"id": match[0], "files": match[1]}
            for match in re.findall(r'data-id="(\d+)" data-files="([^"]*)"', self.page())
        ]


class Slot:
    """The WSGI application the module's server runs: each test plugs in its own demo."""

    app: DemoApp | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.app is not None, "no demo mounted"
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Slot]]:
    slot = Slot()
    waitress = create_server(slot, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=waitress.run, name="demo-waitress", daemon=True).start()
    try:
        yield f"http://127.0.0.1:{waitress.effective_port}", slot
    finally:
        waitress.close()
        waitress.task_dispatcher.shutdown()


@pytest.fixture
def demo(server: tuple[str, Slot], tmp_path: Path) -> Iterator[Demo]:
    base_url, slot = server
    slot.app = make_app(tmp_path / "data")
    try:
        yield Demo(slot.app, base_url)
    finally:
        slot.app.engine.dispose()
        slot.app = None


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_empty_demo_invites_an_upload(demo: Demo) -> None:
    page = demo.page()
    assert 'enctype="multipart/form-data"' in page
    assert "No attachments yet" in page
    assert "holds 0 files" in page


def test_a_plain_file_is_stored_listed_downloaded_and_deleted(demo: Demo) -> None:
    response = demo.upload(("notes.txt", b"plain text notes"))
    assert response.history[0].status_code == 303  # post/redirect/get
    assert "Uploaded notes.txt." in response.text
    (row,) = demo.rows()
    (path,) = row["files"].split()  # no thumbnail for a text file
    assert 'class="icon">TXT<' in response.text
    assert '<img class="thumb"' not in response.text

    link = re.search(r'href="(/depot/[^"]+)"', response.text)
    assert link is not None
    download = demo.http.get(demo.base_url + link.group(1), timeout=10)
    assert download.content == b"plain text notes"

    storage = demo.app.storage
    file_id = path.split("/", 1)[1]
    assert storage.exists(file_id)
    deleted = demo.http.post(f"{demo.base_url}/attachments/{row['id']}/delete", timeout=10)
    assert "Deleted notes.txt and its 1 stored file." in deleted.text
    assert not storage.exists(file_id)
    assert demo.rows() == []


def test_an_image_gets_a_thumbnail(demo: Demo) -> None:
    original = png((400, 200))
    demo.upload(("wide.png", original))
    (row,) = demo.rows()
    image_path, thumbnail_path = row["files"].split()
    page = demo.page()
    thumbnail_src = re.search(r'<img class="thumb" src="([^"]+)"', page)
    assert thumbnail_src is not None
    assert thumbnail_src.group(1) == DepotManager.url_for(thumbnail_path)
    thumbnail = demo.http.get(demo.base_url + thumbnail_src.group(1), timeout=10)
    assert thumbnail.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (128, 64)
    with DepotManager.get_file(image_path) as stored:
        assert stored.read() == original


def test_several_files_in_one_form(demo: Demo) -> None:
    response = demo.upload(("a.txt", b"a"), ("b.png", png((10, 10))), ("c.bin", b"\0\1\2"))
    assert "Uploaded a.txt, b.png, c.bin." in response.text
    assert len(demo.rows()) == 3
    assert "holds 4 files" in demo.page()  # three originals and one thumbnail


def test_a_file_that_only_looks_like_an_image_is_stored_as_a_file(demo: Demo) -> None:
    truncated = png((50, 50))[:60]  # a PNG header, then nothing Pillow can decode
    response = demo.upload(("broken.png", truncated))
    assert response.status_code == 200
    (row,) = demo.rows()
    (path,) = row["files"].split()
    with DepotManager.get_file(path) as stored:
        assert stored.read() == truncated


def test_an_empty_form_is_refused_with_a_message(demo: Demo) -> None:
    response = demo.http.post(demo.base_url + "/upload", files={"files": ("", b"")}, timeout=10)
    assert "Choose at least one file to upload." in response.text
    assert demo.rows() == []


def test_deleting_a_missing_attachment_is_404(demo: Demo) -> None:
    response = demo.http.post(demo.base_url + "/attachments/999/delete", timeout=10)
    assert response.status_code == 404
    assert "attachment 999 does not exist" in response.text


def test_a_form_posted_from_another_site_is_refused(demo: Demo) -> None:
    response = demo.http.post(
        demo.base_url + "/upload",
        files={"files": ("x.txt", b"x")},
        headers={"Origin": "https://evil.example"},
        timeout=10,
    )
    assert response.status_code == 403
    assert demo.rows() == []
    assert demo.app.storage.list() == []


def test_unknown_pages_are_404_and_wrong_methods_405(demo: Demo) -> None:
    assert demo.http.get(demo.base_url + "/nope", timeout=10).status_code == 404
    assert demo.http.get(demo.base_url + "/upload", timeout=10).status_code == 405


def test_pages_carry_safety_headers(demo: Demo) -> None:
    response = demo.http.get(demo.base_url + "/", timeout=10)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_filenames_are_escaped(demo: Demo) -> None:
    demo.upload(("<img src=x onerror=alert(1)>.txt", b"x"))
    page = demo.page()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page


def test_the_data_survives_a_restart(tmp_path: Path) -> None:
    first = make_app(tmp_path / "data")
    file_id = first.storage.create(b"kept")  # the storage lives in the data folder
    first.engine.dispose()
    DepotManager.reset()
    second = make_app(tmp_path / "data")
    assert second.storage.exists(file_id)
    second.engine.dispose()


def test_the_demo_needs_its_own_storage_name(tmp_path: Path) -> None:
    DepotManager.configure("demo", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"})
    with pytest.raises(ValueError, match="storage named 'demo' is already configured"):
        make_app(tmp_path / "data")


def test_demo_command_prints_its_url_and_serves(tmp_path: Path) -> None:
    args = ["demo", "--port", "0", "--data-dir", "here"]
    with cli_server(args, cwd=tmp_path) as server:
        assert server.banner[0].startswith("sa_depot demo running at http://127.0.0.1:")
        assert str(tmp_path / "here") in (server.next_line() or "")
        assert "sa_depot demo" in requests.get(server.base_url + "/", timeout=10).text
        # one access log line per request, in the Common Log Format
        line = server.wait_for_line(r'"GET / HTTP/1\.1"')
        assert re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET / HTTP/1\.1" 200 \d+', line)
        requests.get(server.base_url + "/nope?x=1", timeout=10)
        assert server.wait_for_line(r'"GET /nope\?x=1 HTTP/1\.1" 404')
    assert (tmp_path / "here" / "demo.sqlite").is_file()


def test_demo_command_refuses_a_busy_port(sa_depot: Invoker, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = sa_depot("demo", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert_user_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_demo_command_refuses_an_unusable_data_dir(sa_depot: Invoker, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = sa_depot("demo", "--port", "0", "--data-dir", str(tmp_path / "a-file" / "sub"))
    assert_user_error(result, "cannot create the demo's data folder", "--data-dir")


def test_messages_are_never_taken_from_the_url(demo: Demo) -> None:
    page = demo.http.get(
        demo.base_url + "/?notice=Your+account+is+closed&error=Call+us", timeout=10
    ).text
    assert "Your account is closed" not in page
    assert "Call us" not in page
    # a message is shown once, on the page after the action, from the server
    response = demo.upload(("once.txt", b"x"))
    assert "Uploaded once.txt." in response.text
    assert "Uploaded once.txt." not in demo.page()


def test_the_page_script_gets_json_answers(demo: Demo) -> None:
    accept_json = {"Accept": "application/json"}
    stored = demo.http.post(
        demo.base_url + "/upload",
        files=[("files", ("a.txt", b"a"))],
        headers=accept_json,
        timeout=10,
    )
    assert stored.status_code == 200
    assert stored.json() == {"ok": True, "notice": "Uploaded a.txt."}
    assert "Uploaded a.txt." in demo.page()  # the message waits for the next page

    empty = demo.http.post(
        demo.base_url + "/upload", files={"files": ("", b"")}, headers=accept_json, timeout=10
    )
    assert empty.status_code == 400
    assert empty.json() == {"ok": False, "error": "Choose at least one file to upload."}


def test_an_upload_over_the_limit_is_refused(server: tuple[str, Slot], tmp_path: Path) -> None:
    base_url, slot = server
    slot.app = make_app(tmp_path / "small", max_upload_bytes=1024)
    try:
        response = requests.post(
            base_url + "/upload",
            files=[("files", ("big.bin", b"\0" * 4096))],
            headers={"Accept": "application/json"},
            timeout=10,
        )
        assert response.status_code == 413
        assert response.json() == {"ok": False, "error": "The demo accepts up to 1.0 KiB."}
        assert "Up to <strong>1 KiB</strong> per upload" in requests.get(base_url, timeout=10).text
        assert slot.app.storage.list() == []
    finally:
        slot.app.engine.dispose()
        slot.app = None


def test_the_page_loads_its_script_and_stylesheet(demo: Demo) -> None:
    page = demo.page()
    assert '<script src="/static/demo.js" defer></script>' in page
    for name, content_type in (("demo.js", "text/javascript"), ("demo.css", "text/css")):
        response = demo.http.get(f"{demo.base_url}/static/{name}", timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith(content_type)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert demo.http.get(demo.base_url + "/static/nope.js", timeout=10).status_code == 404
    policy = demo.http.get(demo.base_url + "/", timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_an_image_that_cannot_be_decoded_says_so(demo: Demo) -> None:
    response = demo.upload(("broken.png", png((50, 50))[:60]))
    assert "Uploaded broken.png (no thumbnail: image file is truncated)." in response.text
    assert 'class="no-thumbnail"' in response.text
    assert "could not be decoded" in response.text


def test_uploaded_names_are_shown_normalised(demo: Demo) -> None:
    response = demo.upload(("\u202egnp.exe", b"MZ"))
    assert "\u202e" not in response.text
    assert "Uploaded gnp.exe." in response.text
