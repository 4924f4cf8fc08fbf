"""Names of filedepot 0.12.0's public modules that exist here too, and do what filedepot's do:
``depot.utils``, the module functions of ``depot.manager``, ``DepotManager.set_middleware``,
``depot.middleware.FileServeApp``, the helpers of ``depot.io.utils`` and ``FileStorage``, and
``UploadedFile``'s ``encode``/``decode``/``store_content``/``original_content``."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

import sa_depot.manager
from sa_depot import utils
from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import FileStorage
from sa_depot.io.utils import INMEMORY_FILESIZE, FileIntent, file_from_content, timestamp
from sa_depot.manager import DepotManager
from sa_depot.middleware import FileServeApp
from sa_depot.serving.policy import ServingPolicy


def test_make_content_disposition_transliterates_the_ascii_name() -> None:
    assert utils.make_content_disposition("attachment", "Крупный.txt") == (
        'attachment; filename="Krupnyy.txt"; '
        "filename*=UTF-8''%D0%9A%D1%80%D1%83%D0%BF%D0%BD%D1%8B%D0%B9.txt"
    )
    assert utils.make_content_disposition("inline", "plain.txt") == ('inline; filename="plain.txt"')
    # well-formed where filedepot's was not: no quote or line break reaches the header
    assert utils.make_content_disposition("inline", 'a"b\r\n.txt') == (
        "inline; filename=\"a_b .txt\"; filename*=UTF-8''a%22b%20.txt"
    )
    assert utils.make_content_disposition("attachment", None) == "attachment"
    with pytest.raises(ValueError, match="disposition"):
        utils.make_content_disposition("inline; x=1", "a.txt")


def test_naive_utc_helpers() -> None:
    now = utils.utcnow_naive()
    assert now.tzinfo is None
    aware_now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert abs(aware_now - now) < timedelta(minutes=1)
    assert utils.utcfromtimestamp_naive(86400) == datetime(1970, 1, 2)
    assert datetime.strptime(timestamp(), "%Y-%m-%d %H:%M:%S").year >= 2024


def test_module_functions_of_the_manager(memory: FileStorage) -> None:
    assert sa_depot.manager.get_depot() is memory
    file_id = memory.create(b"by path")
    with sa_depot.manager.get_file(f"default/{file_id}") as stored:
        assert stored.read() == b"by path"
    other = sa_depot.manager.configure(
        "other", {"depot.backend": "depot.io.memory.MemoryFileStorage"}
    )
    sa_depot.manager.set_default("other")
    assert DepotManager.get() is other


def test_set_middleware_registers_a_hand_made_middleware(memory: FileStorage) -> None:
    class Prefix:
        def url_for(self, path: str, expires_in: float | None = None) -> str:
            return "/files/" + path

    DepotManager.set_middleware(Prefix())
    assert DepotManager.url_for("default/x") == "/files/default/x"


def test_file_serve_app_serves_a_file_from_an_applications_view(memory: FileStorage) -> None:
    file_id = memory.create(b"0123456789", filename="résumé.txt", content_type="text/plain")
    served: list[FileServeApp] = []

    @Request.application  # type: ignore[arg-type]
    def view(request: Request) -> Any:
        app = FileServeApp(memory.get(file_id), cache_max_age=60)
        served.append(app)
        return app

    client = Client(view)
    response = client.get("/download")
    assert response.status == "200 OK"
    assert response.data == b"0123456789"
    assert response.headers["Content-Disposition"] == (
        "inline; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    )
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert "Expires" in response.headers and "Last-Modified" in response.headers
    assert served[0].filename == "résumé.txt" and served[0].content_length == 10
    response.close()  # what a server does when the response is sent
    assert served[0].file.closed

    partial = client.get("/download", headers={"Range": "bytes=2-4"})
    assert (partial.status, partial.data) == ("206 Partial Content", b"234")
    cached = client.get("/download", headers={"If-None-Match": response.headers["ETag"]})
    assert cached.status == "304 Not Modified" and cached.data == b""
    refused = client.post("/download")
    assert refused.status == "405 Method Not Allowed" and served[-1].file.closed


def test_file_serve_app_with_a_public_policy_and_its_checks(memory: FileStorage) -> None:
    file_id = memory.create(b"public", filename="p.txt")
    app = FileServeApp(memory.get(file_id), 120, policy=ServingPolicy(cache="public"))
    response = Client(app).get("/")
    assert response.headers["Cache-Control"] == "public, max-age=120"
    with pytest.raises(ConfigurationError, match="cache_max_age"):
        FileServeApp(memory.get(file_id), -1)
    with pytest.raises(ConfigurationError, match="StoredFile"):
        FileServeApp(b"bytes", 60)  # type: ignore[arg-type]


def test_io_helpers_of_filedepot(memory: FileStorage) -> None:
    assert INMEMORY_FILESIZE == 1024 * 1024
    intent = FileIntent(b"x", "x.txt", "text/plain")
    assert intent.fileinfo == (b"x", "x.txt", "text/plain")
    assert FileStorage.fileinfo(intent) == (b"x", "x.txt", "text/plain")

    content, filename, content_type = FileStorage.fileinfo(b"%PDF-1.4 plain bytes")
    assert (filename, content_type) == ("unnamed", "application/pdf")
    named = io.BytesIO(b"a,b")
    named.name = "/tmp/table.csv"
    assert FileStorage.fileinfo(named)[1:] == ("table.csv", "text/csv")
    file_id = memory.create(b"old", filename="old.txt", content_type="text/plain")
    assert FileStorage.fileinfo(b"new", existing=lambda: memory.get(file_id))[1:] == (
        "old.txt",
        "text/plain",
    )

    must_close, fileobj = file_from_content(FileIntent(io.BytesIO(b"abc"), "a", None))
    assert not must_close and fileobj.read() == b"abc"


def test_uploaded_file_encodes_and_decodes_its_json(memory: FileStorage) -> None:
    uploaded = UploadedFile(b"json")
    encoded = uploaded.encode()
    assert json.loads(encoded)["path"] == uploaded.path
    decoded = UploadedFile.decode(encoded)
    assert decoded == uploaded and decoded.file.read() == b"json"


def test_a_filter_written_as_filedepot_documents_it(memory: FileStorage) -> None:
    """filedepot's guide: read ``original_content`` with ``file_from_content``, store with
    ``store_content`` (which returns ``(path, file_id)``), set keys."""

    class WithReversedCopy(FileFilter):
        def on_save(self, uploaded_file: UploadedFile) -> None:
            close_content, content = file_from_content(uploaded_file.original_content)
            data = content.read()
            if close_content:
                content.close()
            copy_path, copy_id = uploaded_file.store_content(data[::-1], "reversed.txt")
            uploaded_file["copy_id"] = copy_id
            uploaded_file["copy_path"] = copy_path

    for content in (b"abc", io.BytesIO(b"abc"), FileIntent(b"abc", "a.txt", "text/plain")):
        uploaded = UploadedFile(content, filters=[WithReversedCopy()])
        assert uploaded["copy_path"] == f"default/{uploaded['copy_id']}"
        with DepotManager.get_file(uploaded["copy_path"]) as stored:
            assert stored.read() == b"cba"
        assert uploaded.original_content is None  # not kept once stored
