"""The nginx configuration of docs/serving.md, run for real in front of the middleware.

The ``server`` block is taken from the documentation page itself (its only ```nginx fence), with
the port, the application's address and the storage directory substituted, so the page cannot
drift from what works. Outside CI a missing nginx skips this module; with ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client
from werkzeug.wrappers import Request

from sa_depot.io.interfaces import StoredFile
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from sa_depot.serving.representation import SANDBOX_CSP
from tests.databases import in_ci
from tests.middleware.conftest import Served
from tests.middleware.helpers import DOWNLOADS, content

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "serving.md"
DOC_STORAGE_DIR = "/var/lib/myapp/files"
DOC_APP_ADDRESS = "127.0.0.1:8000"
MakeMiddleware = Callable[..., DepotMiddleware]

MAIN_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
{server}
}}
"""


def documented_server_block() -> str:
    blocks = re.findall(r"^```nginx\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1, "docs/serving.md should hold exactly one nginx example"
    block = str(blocks[0])
    for needed in ("listen 80;", DOC_APP_ADDRESS, DOC_STORAGE_DIR + "/", "/_depot_files/"):
        assert needed in block, f"the nginx example no longer contains {needed!r}"
    return block


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Nginx:
    base_url: str
    error_log: Path


@pytest.fixture
def nginx_binary() -> str:
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        if in_ci():
            pytest.fail("CI=true and nginx is not installed (apt-get install nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return path


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    storage = DepotManager.configure("disk", {"depot.storage_path": str(tmp_path / "files")})
    assert isinstance(storage, LocalFileStorage)
    return storage


@pytest.fixture
def nginx(
    nginx_binary: str, served: Served, storage: LocalFileStorage, tmp_path: Path
) -> Iterator[Nginx]:
    port = free_port()
    storage_dir = storage.storage_path
    server = (
        documented_server_block()
        .replace("listen 80;", f"listen 127.0.0.1:{port};")
        .replace(DOC_APP_ADDRESS, f"{served.host}:{served.port}")
        .replace(DOC_STORAGE_DIR + "/", storage_dir.rstrip("/") + "/")
    )
    work = tmp_path / "nginx"
    work.mkdir()
    config = work / "nginx.conf"
    config.write_text(MAIN_CONFIG.format(tmp=work, server=server), encoding="utf-8")
    process = subprocess.Popen(
        [nginx_binary, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log = (work / "error.log").read_text(errors="replace")
                pytest.fail(f"nginx exited with {process.returncode}:\n{log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start listening within 30 s")
                time.sleep(0.05)
        yield Nginx(f"http://127.0.0.1:{port}", work / "error.log")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful stop of the nginx we started
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def through_nginx(
    nginx: Nginx, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.request(
        method, nginx.base_url + path, headers=headers, allow_redirects=False, timeout=30
    )


def test_nginx_sends_local_files_with_the_applications_headers(
    nginx: Nginx, served: Served, make_middleware: MakeMiddleware, storage: LocalFileStorage
) -> None:
    picture = content(200_000)
    png_id = storage.create(picture, filename="photo.png", content_type="image/png")
    html_id = storage.create(
        b"<script>alert(1)</script>", filename="x.html", content_type="text/html"
    )
    mapping = {"/unrelated": "/nowhere/", storage.storage_path: "/_depot_files/"}
    policy = ServingPolicy(x_accel_redirect=mapping)
    served.mount(make_middleware(policies={"disk": policy}))

    png = through_nginx(nginx, f"/depot/disk/{png_id}")
    assert png.status_code == 200
    assert png.content == picture
    assert png.headers["Content-Type"] == "image/png"
    assert png.headers["Content-Disposition"] == 'inline; filename="photo.png"'
    assert png.headers["Cache-Control"] == "private, max-age=604800"
    assert png.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in png.headers
    assert "X-Accel-Redirect" not in png.headers
    # the application answered without the bytes: nginx read the file
    assert served.slot.log[-1].path == f"/depot/disk/{png_id}"

    html = through_nginx(nginx, f"/depot/disk/{html_id}")
    assert html.content == b"<script>alert(1)</script>"
    assert html.headers["Content-Disposition"] == 'attachment; filename="x.html"'
    assert html.headers["Content-Security-Policy"] == SANDBOX_CSP
    assert html.headers["X-Content-Type-Options"] == "nosniff"

    partial = through_nginx(nginx, f"/depot/disk/{png_id}", headers={"Range": "bytes=1000-1999"})
    assert partial.status_code == 206
    assert partial.content == picture[1000:2000]
    assert partial.headers["Content-Range"] == f"bytes 1000-1999/{len(picture)}"

    head = through_nginx(nginx, f"/depot/disk/{png_id}", method="HEAD")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(picture))


def test_nginx_keeps_the_filename_type_and_disposition_of_every_download(
    nginx: Nginx, served: Served, make_middleware: MakeMiddleware, storage: LocalFileStorage
) -> None:
    policy = ServingPolicy(x_accel_redirect={storage.storage_path: "/_depot_files/"})
    served.mount(make_middleware(policies={"disk": policy}))
    proxying = Client(DepotMiddleware())
    names = ("Content-Type", "Content-Disposition", "Content-Security-Policy")
    for filename, content_type in DOWNLOADS:
        file_id = storage.create(b"payload", filename=filename, content_type=content_type)
        proxied = proxying.get(f"/depot/disk/{file_id}")
        response = through_nginx(nginx, f"/depot/disk/{file_id}")
        assert response.content == b"payload"
        assert served.slot.log[-1].path == f"/depot/disk/{file_id}"  # nginx read the file
        for name in names:
            assert response.headers.get(name) == proxied.headers.get(name), (filename, name)


def test_the_internal_location_is_not_reachable_directly(
    nginx: Nginx, served: Served, make_middleware: MakeMiddleware, storage: LocalFileStorage
) -> None:
    file_id = storage.create(b"secret", filename="s.txt")
    with storage.get(file_id) as stored:
        assert stored.local_path is not None
        relative = os.path.relpath(stored.local_path, storage.storage_path)
    served.mount(make_middleware())
    direct = through_nginx(nginx, "/_depot_files/" + relative)
    assert direct.status_code == 404
    assert b"secret" not in direct.content


def test_the_middleware_still_decides(
    nginx: Nginx, served: Served, make_middleware: MakeMiddleware, storage: LocalFileStorage
) -> None:
    file_id = storage.create(b"for alice", filename="a.txt")

    def only_alice(request: Request, stored: StoredFile) -> bool:
        return request.headers.get("X-User") == "alice"

    policy = ServingPolicy(
        authorize=only_alice,
        x_accel_redirect={storage.storage_path: "/_depot_files/"},
    )
    served.mount(make_middleware(policies={"disk": policy}))
    url = f"/depot/disk/{file_id}"
    denied = through_nginx(nginx, url)
    assert denied.status_code == 403
    assert b"for alice" not in denied.content
    allowed = through_nginx(nginx, url, headers={"X-User": "alice"})
    assert allowed.status_code == 200
    assert allowed.content == b"for alice"
    etag = served.get(url, headers={"X-User": "alice"}).headers["ETag"]
    again = through_nginx(nginx, url, headers={"X-User": "alice", "If-None-Match": etag})
    assert again.status_code == 304
