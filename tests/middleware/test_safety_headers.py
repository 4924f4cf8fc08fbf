"""Uploaded files cannot run script in the site's origin: disposition, nosniff, sandbox CSP."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

import pytest

from sa_depot.io.interfaces import FileStorage
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from sa_depot.serving.representation import SANDBOX_CSP
from tests.middleware.conftest import Served
from tests.middleware.helpers import SECRET

MakeMiddleware = Callable[..., DepotMiddleware]


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/mpeg",
        "audio/wav",
        "video/mp4",
        "video/webm",
        "application/pdf",
        "text/plain",
        "text/plain; charset=utf-8",
    ],
)
def test_safe_types_are_inline_without_sandbox(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage, content_type: str
) -> None:
    file_id = memory.create(b"data", filename="f", content_type=content_type)
    served.mount(make_middleware())
    response = served.get(f"/depot/files/{file_id}")
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == 'inline; filename="f"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "text/html; charset=utf-8",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/javascript",
        "text/javascript",
        "application/x-shockwave-flash",
        "application/octet-stream",
        "text/css",
        "application/json",
        "multipart/x-mixed-replace",
        "made/up",
    ],
)
def test_other_types_are_attachments_in_a_sandbox(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage, content_type: str
) -> None:
    file_id = memory.create(
        b"<script>alert(document.domain)</script>", filename="x.html", content_type=content_type
    )
    served.mount(make_middleware())
    response = served.get(f"/depot/files/{file_id}")
    assert response.headers["Content-Disposition"] == 'attachment; filename="x.html"'
    assert response.headers["Content-Security-Policy"] == SANDBOX_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # ranges of a risky file keep the protection
    partial = served.get(f"/depot/files/{file_id}", headers={"Range": "bytes=0-7"})
    assert partial.status_code == 206
    assert partial.headers["Content-Security-Policy"] == SANDBOX_CSP
    assert partial.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(
    "stored_type",
    ["text/html\r\nX-Injected: 1", "text/html\nSet-Cookie: a=b", "not a type", "", "tëxt/html"],
)
def test_malformed_stored_types_become_octet_stream(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage, stored_type: str
) -> None:
    file_id = memory.create(b"<b>x</b>", filename="x", content_type=stored_type or None)
    # bypass detection: store the malformed type as an old database could hold it
    memory._files[file_id][0].content_type = stored_type  # type: ignore[attr-defined]
    served.mount(make_middleware())
    response = served.get(f"/depot/files/{file_id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "X-Injected" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert response.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", 'inline; filename="report.pdf"'),
        ("my report.pdf", 'inline; filename="my report.pdf"'),
        (
            "résumé.pdf",
            "inline; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        (  # transliterated, as filedepot does (anyascii)
            "文件.pdf",
            "inline; filename=\"WenJian.pdf\"; filename*=UTF-8''%E6%96%87%E4%BB%B6.pdf",
        ),
        (
            "Крупный.pdf",
            'inline; filename="Krupnyy.pdf"; '
            "filename*=UTF-8''%D0%9A%D1%80%D1%83%D0%BF%D0%BD%D1%8B%D0%B9.pdf",
        ),
        ('a"b\\c.pdf', 'inline; filename="c.pdf"'),  # a client path: last component only
        # the ASCII fallback replaces a quote; filename* keeps it, percent-encoded
        ('quo"te.pdf', "inline; filename=\"quo_te.pdf\"; filename*=UTF-8''quo%22te.pdf"),
        ("../../etc/passwd.pdf", 'inline; filename="passwd.pdf"'),
        ("C:\\Users\\me\\x.pdf", 'inline; filename="x.pdf"'),
        ("line\r\nbreak.pdf", 'inline; filename="line break.pdf"'),  # a stored old name
        # bidirectional controls never reach a header: "\u202egnp.exe" would show "exe.png"
        ("\u202egnp.exe", 'inline; filename="gnp.exe"'),
        (None, "inline"),
    ],
)
def test_content_disposition_filenames(
    served: Served,
    make_middleware: MakeMiddleware,
    memory: FileStorage,
    filename: str | None,
    expected: str,
) -> None:
    file_id = memory.create(b"%PDF-1.4", content_type="application/pdf")
    memory._files[file_id][0].filename = filename  # type: ignore[attr-defined]
    served.mount(make_middleware())
    response = served.get(f"/depot/files/{file_id}")
    assert response.headers["Content-Disposition"] == expected
    if "filename*=UTF-8''" in expected:
        encoded = expected.split("filename*=UTF-8''", 1)[1]
        assert unquote(encoded, encoding="utf-8") == filename  # the exact name


def test_the_inline_allow_list_is_configurable(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    png = memory.create(b"\x89PNG", filename="a.png", content_type="image/png")
    csv = memory.create(b"a,b", filename="a.csv", content_type="text/csv")
    served.mount(make_middleware(policy=ServingPolicy(inline_types=frozenset({"text/csv"}))))
    assert served.get(f"/depot/files/{csv}").headers["Content-Disposition"].startswith("inline")
    png_response = served.get(f"/depot/files/{png}")
    assert png_response.headers["Content-Disposition"].startswith("attachment")
    assert png_response.headers["Content-Security-Policy"] == SANDBOX_CSP


def test_every_response_has_nosniff(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    file_id = memory.create(b"0123456789", filename="a.txt")
    served.mount(
        make_middleware(
            secret=SECRET, policies={"files": ServingPolicy(authorize=lambda r, f: True)}
        )
    )
    url = f"/depot/files/{file_id}"
    etag = served.get(url).headers["ETag"]
    responses = [
        served.get(url),  # 200
        served.get(url, headers={"Range": "bytes=0-1"}),  # 206
        served.get(url, headers={"Range": "bytes=0-1,4-5"}),  # multipart or 200
        served.get(url, headers={"If-None-Match": etag}),  # 304
        served.get(url, headers={"If-Match": '"x"'}),  # 412
        served.get(url, headers={"Range": "bytes=99-"}),  # 416
        served.get(url + "?expires=1&signature=00"),  # 403
        served.get("/depot/files/nope"),  # 404
        served.get("/elsewhere"),  # 404 standalone
        served.request("PUT", url),  # 405
        served.head(url),
    ]
    assert {r.status_code for r in responses} >= {200, 206, 304, 412, 416, 403, 404, 405}
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.status_code
