"""One filename normalisation (sa_depot.io.filenames) for every kind of input: the same upload
gets the same stored name through Werkzeug, python-multipart (Starlette/FastAPI), a cgi-like
object, bytes, a file, a FileIntent or another storage's file; invisible characters never
reach a listing or a header."""

from __future__ import annotations

import asyncio
import io
import unicodedata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request as StarletteRequest
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request as WerkzeugRequest

from sa_depot.io.filenames import MAX_FILENAME_CHARS, normalize_filename
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware


@pytest.mark.parametrize(
    ("given_name", "stored"),
    [
        ("report.pdf", "report.pdf"),
        ('évil "q".txt', 'évil "q".txt'),  # quotes are kept
        ("\u202egnp.exe", "gnp.exe"),  # RIGHT-TO-LEFT OVERRIDE: shown as "exe.png"
        ("a\u2066b\u2069\u200e\u200fc\u061c.txt", "abc.txt"),  # isolates, marks
        ("zero\u200bwidth\ufeff\u00ad.txt", "zerowidth.txt"),  # ZWSP, BOM, soft hyphen
        ("line\r\nbreak\tand\x00nul.txt", "line break and nul.txt"),
        ("para\u2029graph\u2028.txt", "para graph .txt"),
        ("e\u0301te\u0301.txt", "été.txt"),  # decomposed (macOS) becomes composed (NFC)
        ("C:\\Users\\me\\Report.pdf", "Report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("bad\udcffbyte.txt", "bad\ufffdbyte.txt"),  # a lone surrogate from undecodable bytes
        ("文件 100%.pdf", "文件 100%.pdf"),
        ("..", None),
        ("dir/", None),
        ("\u202e", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_filename(given_name: str | None, stored: str | None) -> None:
    assert normalize_filename(given_name) == stored


def test_a_long_name_keeps_its_extension() -> None:
    name = normalize_filename("x" * 1000 + ".tar.gz")
    assert name is not None
    assert len(name) == MAX_FILENAME_CHARS
    assert name.endswith("xx.gz")  # the last extension is kept
    assert len(normalize_filename("y" * 1000) or "") == MAX_FILENAME_CHARS


@given(st.text(max_size=300))
def test_normalising_is_idempotent_and_leaves_nothing_invisible(name: str) -> None:
    once = normalize_filename(name)
    assert normalize_filename(once) == once
    if once is not None:
        assert once == once.strip() and once not in (".", "..")
        assert "/" not in once and "\\" not in once
        assert len(once) <= MAX_FILENAME_CHARS
        categories = {unicodedata.category(char) for char in once}
        assert not categories & {"Cc", "Cf", "Cs", "Zl", "Zp"}


# -- every input kind -------------------------------------------------------------------------
#: What a browser sends for a file named 'évil "q"<RLO>.txt': the HTML Standard escapes '"'.
FORM_FILENAME = "évil %22q%22\u202e.txt".encode()
STORED = 'évil "q".txt'
BODY = (
    b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="'
    + FORM_FILENAME
    + b'"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n'
)
CONTENT_TYPE = "multipart/form-data; boundary=XyZ"


def werkzeug_upload() -> Any:
    environ = EnvironBuilder(
        method="POST", input_stream=io.BytesIO(BODY), content_type=CONTENT_TYPE
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(len(BODY))
    return WerkzeugRequest(environ).files["files"]


def starlette_upload() -> Any:
    """Parsed by python-multipart, as Starlette and FastAPI do."""

    async def parse() -> Any:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "headers": [
                (b"content-type", CONTENT_TYPE.encode()),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
        form = await StarletteRequest(scope, receive).form()
        return form["files"]

    return asyncio.run(parse())


def test_werkzeug_and_python_multipart_disagree_on_the_raw_name() -> None:
    """What this module exists for: the parsers hand over different names."""
    assert werkzeug_upload().filename == 'évil "q"\u202e.txt'
    assert starlette_upload().filename == "évil %22q%22\u202e.txt"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(werkzeug_upload, id="werkzeug"),
        pytest.param(starlette_upload, id="python-multipart"),
        pytest.param(
            lambda: SimpleNamespace(
                file=io.BytesIO(b"hello"), filename=FORM_FILENAME.decode(), type="text/plain"
            ),
            id="cgi.FieldStorage-like",
        ),
    ],
)
def test_every_upload_object_gets_the_same_stored_name(content: Any) -> None:
    storage = MemoryFileStorage()
    upload = content()
    info = storage.store(upload)
    assert info.filename == STORED
    assert storage.get(info.file_id).read() == b"hello"


def test_bytes_files_intents_and_stored_files_are_normalised_alike(tmp_path: Path) -> None:
    storage = MemoryFileStorage()
    raw = "r\u00e9sum\u00e9\u202e\u200b.pdf"
    expected = "résumé.pdf"

    assert storage.store(b"%PDF", filename=raw).filename == expected
    on_disk = tmp_path / raw
    on_disk.write_bytes(b"%PDF")
    with on_disk.open("rb") as fileobj:  # a file object's .name
        assert storage.store(fileobj).filename == expected
    assert storage.store(FileIntent(b"%PDF", raw, "application/pdf")).filename == expected
    assert storage.store(FileIntent(io.BytesIO(b"%PDF"), None, None), raw).filename == expected

    # a file of another storage written before the normalisation (or by filedepot)
    old = MemoryFileStorage()
    old_id = old.create(b"%PDF", filename="old.pdf")
    old._files[old_id][0].filename = raw  # type: ignore[attr-defined]
    with old.get(old_id) as stored:
        assert storage.store(stored).filename == expected
    # replacing with content that carries no name keeps the (normalised) name
    file_id = storage.create(b"x", raw)
    storage.replace(file_id, b"y")
    assert storage.info(file_id).filename == expected


def test_a_served_name_is_the_stored_name_exactly(tmp_path: Path) -> None:
    """filename* carries the stored name, quotes included; the ASCII fallback replaces them."""
    DepotManager.configure("files", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"})
    info = DepotManager.get("files").store(werkzeug_upload())
    response = Client(DepotMiddleware()).get(f"/depot/files/{info.file_id}")
    assert response.headers["Content-Disposition"] == (
        "inline; filename=\"evil _q_.txt\"; filename*=UTF-8''%C3%A9vil%20%22q%22.txt"
    )
