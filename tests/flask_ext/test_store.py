"""sa_depot.flask.Store: Flask-Store's configuration and API, the route serving through the
shared file server, Flask-Store's plain files at their old URLs, and S3 (in the request, and in
the background through a durable outbox)."""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, request, url_for
from flask.testing import FlaskClient

from sa_depot.exceptions import ConfigurationError, UnsupportedContent
from sa_depot.fields.upload import UploadedFile
from sa_depot.flask import NotConfiguredError, Provider, Store
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager
from sa_depot.orm import records
from sa_depot.serving.policy import ServingPolicy
from tests.s3server import SeaweedS3

ID = r"[0-9a-f-]{36}"


def make_app(store: Store, tmp_path: Path, **config: Any) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(config)
    store.init_app(app)

    @app.post("/upload")
    def upload() -> dict[str, Any]:
        saved = store.Provider().save(request.files["afile"])
        return {
            "relative_path": saved.relative_path,
            "absolute_path": saved.absolute_path,
            "relative_url": saved.relative_url,
            "absolute_url": saved.absolute_url,
        }

    return app


def upload(client: FlaskClient, data: bytes, name: str) -> dict[str, Any]:
    response = client.post(
        "/upload", data={"afile": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    result: dict[str, Any] = response.get_json()
    return result


@pytest.fixture
def local_app(tmp_path: Path) -> Iterator[Flask]:
    store = Store()
    app = make_app(
        store, tmp_path, STORE_PATH=str(tmp_path / "uploads"), STORE_DOMAIN="https://example.com"
    )
    yield app


# -- Flask-Store's API ----------------------------------------------------------------------------
def test_save_returns_paths_and_urls_and_the_route_serves_the_file(
    local_app: Flask, tmp_path: Path
) -> None:
    client = local_app.test_client()
    saved = upload(client, b"hello flask", "hello.txt")
    assert re.fullmatch(rf"flaskstore/{ID}", saved["relative_path"])
    file_id = saved["relative_path"].split("/")[1]
    assert saved["relative_url"] == f"/flaskstore/flaskstore/{file_id}/hello.txt"
    assert saved["absolute_url"] == f"https://example.com/flaskstore/flaskstore/{file_id}/hello.txt"
    assert saved["absolute_path"].startswith(str(tmp_path / "uploads" / ".sa_depot"))
    assert Path(saved["absolute_path"]).read_bytes() == b"hello flask"

    response = client.get(saved["relative_url"])
    assert response.status == "200 OK"
    assert response.data == b"hello flask"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == 'inline; filename="hello.txt"'
    etag = response.headers["ETag"]
    assert client.get(saved["relative_url"], headers={"If-None-Match": etag}).status_code == 304
    ranged = client.get(saved["relative_url"], headers={"Range": "bytes=6-"})
    assert (ranged.status_code, ranged.data) == (206, b"flask")
    head = client.head(saved["relative_url"])
    assert (head.status_code, head.data, head.headers["Content-Length"]) == (200, b"", "11")
    assert client.post(saved["relative_url"]).status_code == 405


def test_uploaded_html_is_never_shown_in_the_sites_origin(local_app: Flask) -> None:
    client = local_app.test_client()
    saved = upload(client, b"<html><script>alert(1)</script></html>", "page.html")
    response = client.get(saved["relative_url"])
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_provider_api_in_code(local_app: Flask) -> None:
    with local_app.test_request_context("/"):
        store: Store = Store()  # any Store object finds the application's state
        provider = store.Provider(FileIntent(b"abc", "a.bin", "application/octet-stream"))
        assert provider.save() is provider
        again = Provider(provider.relative_path)
        assert again.exists()
        with again.open() as stored:
            assert stored.read() == b"abc"
        assert again.relative_url == f"/flaskstore/{provider.relative_path}"
        with pytest.raises(UnsupportedContent, match="needs the upload"):
            Provider().save()
        assert url_for("flask.store.file", filename="x/y.png") == "/flaskstore/x/y.png"


def test_application_factories_share_one_store(tmp_path: Path) -> None:
    store = Store()
    first = make_app(store, tmp_path, STORE_PATH=str(tmp_path / "uploads"))
    second = make_app(store, tmp_path, STORE_PATH=str(tmp_path / "uploads"))
    saved = upload(first.test_client(), b"shared", "s.txt")
    assert second.test_client().get(saved["relative_url"]).data == b"shared"
    with pytest.raises(ConfigurationError, match="STORE_DEPOT_NAME: a storage named 'flaskstore'"):
        make_app(store, tmp_path, STORE_PATH=str(tmp_path / "elsewhere"))


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({}, NotConfiguredError, "STORE_PATH must be configured"),
        (
            {"STORE_PROVIDER": "flask_store.stores.s3.S3Store", "STORE_S3_REGION": "eu-west-1"},
            NotConfiguredError,
            "STORE_S3_BUCKET must be configured",
        ),
        (
            {
                "STORE_PROVIDER": "flask_store.providers.s3.S3GeventProvider",
                "STORE_S3_BUCKET": "b",
                "STORE_S3_REGION": "eu-west-1",
                "STORE_S3_ACCESS_KEY": "k",
            },
            NotConfiguredError,
            "STORE_S3_SECRET_KEY must be configured",
        ),
        (
            {"STORE_PROVIDER": "flask_store.stores.ftp.FtpStore"},
            ConfigurationError,
            "STORE_PROVIDER",
        ),
        (
            {"STORE_PATH": "/tmp", "STORE_URL_PREFIX": "files"},
            ConfigurationError,
            "STORE_URL_PREFIX",
        ),
    ],
)
def test_missing_or_wrong_settings_fail_at_init_app_naming_the_key(
    tmp_path: Path, config: dict[str, str], error: type[Exception], message: str
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(error, match=message):
        Store().init_app(app)


# -- Flask-Store's plain files -------------------------------------------------------------------
@pytest.fixture
def legacy_site(tmp_path: Path) -> tuple[Flask, Path]:
    """A STORE_PATH as Flask-Store left it: plain files, one in a location subdirectory."""
    root = tmp_path / "uploads"
    (root / "avatars").mkdir(parents=True)
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 old photo")
    (root / "avatars" / "me.png").write_bytes(b"\x89PNG old avatar")
    (root / ".htaccess").write_bytes(b"secret config")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    app = Flask(__name__)
    app.config.update(STORE_PATH=str(root), STORE_URL_PREFIX="/uploads")
    Store(app)
    return app, root


def test_flask_stores_plain_files_keep_their_urls(legacy_site: tuple[Flask, Path]) -> None:
    app, _ = legacy_site
    client = app.test_client()
    photo = client.get("/uploads/photo.jpg")
    assert (photo.status_code, photo.data) == (200, b"\xff\xd8\xff\xe0 old photo")
    assert photo.headers["Content-Type"] == "image/jpeg"
    assert photo.headers["ETag"].startswith('W/"')  # no checksum: a weak validator
    assert photo.headers["X-Content-Type-Options"] == "nosniff"
    avatar = client.get("/uploads/avatars/me.png", headers={"Range": "bytes=5-"})
    assert (avatar.status_code, avatar.data) == (206, b"old avatar")
    with app.test_request_context("/"):
        old = Provider("me.png", location="avatars")
        assert old.relative_url == "/uploads/avatars/me.png"
        assert old.relative_path == "avatars/me.png"
        assert old.exists()


@pytest.mark.parametrize(
    "path",
    ["../secret.txt", "link.txt", ".htaccess", "avatars/../../secret.txt", "nosuch.jpg", "avatars"],
)
def test_nothing_else_under_or_outside_store_path_is_served(
    legacy_site: tuple[Flask, Path], path: str
) -> None:
    app, _ = legacy_site
    response = app.test_client().get(f"/uploads/{path}")
    assert response.status_code == 404
    assert b"outside" not in response.data and b"secret" not in response.data


def test_sa_depots_own_files_are_not_served_as_plain_files(legacy_site: tuple[Flask, Path]) -> None:
    app, root = legacy_site
    with app.test_request_context("/"):
        saved = Provider().save(FileIntent(b"new file", "n.txt", "text/plain"))
        blob = Path(str(saved.absolute_path)).relative_to(root)
    client = app.test_client()
    assert client.get(f"/uploads/{blob}").status_code == 404
    assert client.get(f"/uploads/{saved.relative_path}").data == b"new file"


# -- sa_depot's own configuration -----------------------------------------------------------------
def test_sa_depot_storages_and_policies_from_the_flask_config(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        STORE_PATH=str(tmp_path / "uploads"),
        STORE_DEPOT_STORAGES={"media": {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}},
        STORE_SIGNING_SECRET="a-long-enough-secret-0123",
        STORE_SERVING_POLICIES={
            "media": ServingPolicy(require_signature=True, signed_url_expires_in=60)
        },
    )
    Store(app)
    photo = UploadedFile(b"private photo", "media")
    client = app.test_client()
    with app.test_request_context("/"):
        url = photo.url  # DepotManager links to the extension's route
    assert re.fullmatch(rf"/flaskstore/media/{photo.file_id}\?expires=\d+&signature=\w+", url)
    assert client.get(url).data == b"private photo"
    assert client.get(url.split("?")[0]).status_code == 403
    assert photo.lifecycle is not None
    records.discard(photo.lifecycle)  # never saved: removed now, not at exit


def test_a_store_named_in_store_depot_storages_needs_no_flask_store_keys(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config["STORE_DEPOT_STORAGES"] = {
        "flaskstore": {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    }
    store = Store(app)
    with app.test_request_context("/"):
        saved = store.Provider().save(b"in memory")
        assert saved.absolute_path is None
        assert app.test_client().get(saved.relative_url).data == b"in memory"


# -- S3 -------------------------------------------------------------------------------------------
def s3_config(server: SeaweedS3, bucket: str, provider: str, **extra: Any) -> dict[str, Any]:
    return {
        "STORE_PROVIDER": provider,
        "STORE_PATH": f"/site-{uuid.uuid4().hex[:8]}/",
        "STORE_S3_BUCKET": bucket,
        "STORE_S3_REGION": "us-east-1",
        "STORE_S3_ACCESS_KEY": server.access_key_id,
        "STORE_S3_SECRET_KEY": server.secret_access_key,
        "STORE_S3_ENDPOINT_URL": server.endpoint_url,
        **extra,
    }


@pytest.mark.s3
def test_s3_store_saves_objects_and_redirects_to_presigned_urls(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    config = s3_config(s3_server, s3_bucket, "flask_store.stores.s3.S3Store")
    app = make_app(Store(), tmp_path, **config)
    client = app.test_client()
    saved = upload(client, b"to the bucket", "b.txt")
    key = saved["absolute_path"]
    assert key == config["STORE_PATH"].strip("/") + "/" + saved["relative_path"].split("/")[1]
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == len(b"to the bucket")
    response = client.get(saved["relative_url"])
    assert response.status_code == 307
    assert response.headers["Cache-Control"] == "no-store"
    direct = requests.get(response.headers["Location"], timeout=30)
    assert direct.content == b"to the bucket"
    assert direct.headers["Content-Disposition"] == 'inline; filename="b.txt"'


@pytest.mark.s3
def test_background_uploads_finish_after_the_response_and_survive_a_restart(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    provider = "flask_store.stores.s3.S3GeventStore"
    unreachable = s3_config(
        s3_server,
        s3_bucket,
        provider,
        STORE_S3_ENDPOINT_URL="http://127.0.0.1:9",  # discard port: nothing listens
        STORE_OUTBOX_PATH=str(outbox),
    )
    store = Store()
    app = make_app(store, tmp_path, **unreachable)
    client = app.test_client()
    saved = upload(client, b"later", "later.txt")  # answered at once, S3 or not
    file_id = saved["relative_path"].split("/")[1]
    with app.app_context():
        state = store.state
        assert state.outbox is not None
        assert not state.outbox.wait(timeout=30)  # the copy failed: the file waits
        assert state.outbox.pending() == [file_id]
        served = client.get(saved["relative_url"])  # served from the outbox meanwhile
        assert (served.status_code, served.data) == (200, b"later")
        state.close()  # the process "stops" with the upload undone

    DepotManager.reset()
    reachable = {**unreachable, "STORE_S3_ENDPOINT_URL": s3_server.endpoint_url}
    restarted = make_app(Store(), tmp_path, **reachable)
    with restarted.app_context():
        state = restarted.extensions["sa_depot.flask"]
        assert state.outbox.wait(timeout=60)  # resumed at init_app, and sent
        key = state.storage.key(file_id)
        obj = s3_server.client().get_object(Bucket=s3_bucket, Key=key)
        assert obj["Body"].read() == b"later"
        assert state.storage.get(file_id).filename == "later.txt"
        state.close()
    response = restarted.test_client().get(saved["relative_url"])
    assert response.status_code == 307  # now redirected to the object


def test_outbox_keeps_files_until_the_target_takes_them(tmp_path: Path) -> None:
    from sa_depot.io.local import LocalFileStorage
    from sa_depot.io.outbox import Outbox

    class Refusing(LocalFileStorage):
        refuse = True

        def _write(self, content: Any, *, replace: bool) -> None:
            if self.refuse:
                raise OSError("target down")
            super()._write(content, replace=replace)

    target = Refusing(str(tmp_path / "target"))
    outbox = Outbox(LocalFileStorage(str(tmp_path / "outbox")), target, first_delay=0.05)
    info = outbox.store(b"queued", "q.txt")
    assert not outbox.wait(timeout=10)
    with outbox.open(info.file_id) as stored:  # readable from the outbox meanwhile
        assert stored.read() == b"queued"
    target.refuse = False
    wait_until(lambda: not outbox.pending())
    with outbox.open(info.file_id) as stored:
        assert (stored.read(), stored.filename) == (b"queued", "q.txt")
    assert target.list() == [info.file_id]
    outbox.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_flask_is_an_optional_extra() -> None:
    import subprocess
    import sys

    script = (
        "import sys\nimport sa_depot, sa_depot.fields.sqlalchemy, sa_depot.middleware\n"
        "assert 'flask' not in sys.modules\n"
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 0
