"""The content type of stored files: libmagic's answer, refined by the filename only where
libmagic names a container the filename's format is built on (sa_depot.io.content_types).

Every file here is built by the test in the layouts real programs write: zip archives with
their members in several orders (Microsoft Office, LibreOffice and python-docx-like writers,
EPUB and OpenDocument with and without ``mimetype`` first, jars with and without the manifest
first), a valid OLE compound file, SVG with and without an XML declaration, feeds, schemas and
text formats. The expected types are written out, not read from the table under test.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from sa_depot.io.content_types import _magic_detector
from sa_depot.io.memory import MemoryFileStorage

pytestmark = pytest.mark.skipif(_magic_detector() is None, reason="needs libmagic")

OOXML = "application/vnd.openxmlformats-officedocument."
ODF = "application/vnd.oasis.opendocument."
DOCX = OOXML + "wordprocessingml.document"
XLSX = OOXML + "spreadsheetml.sheet"
PPTX = OOXML + "presentationml.presentation"


# -- builders ---------------------------------------------------------------------------------
def zip_of(*members: tuple[str, bytes]) -> bytes:
    """A zip archive with ``members`` in this order (``mimetype`` stored, as ODF/EPUB want)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            method = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    assert zipfile.ZipFile(io.BytesIO(buffer.getvalue())).testzip() is None
    return buffer.getvalue()


CONTENT_TYPES_XML = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    b'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>'
)
RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>'
)
CORE = b'<?xml version="1.0"?><cp:coreProperties xmlns:cp="urn:x"/>' + b" " * 3000


def ooxml(part: str, order: str) -> bytes:
    """An Office Open XML package whose main part is ``part`` (``word/document.xml``...).

    ``order``: ``"office"`` ([Content_Types].xml first, as Microsoft Office writes),
    ``"rels-first"`` (_rels/.rels first, as LibreOffice and several Python writers do),
    ``"props-first"`` (document properties big enough to push the main part out of libmagic's
    view), ``"part-first"``.
    """
    members = {
        "content": ("[Content_Types].xml", CONTENT_TYPES_XML),
        "rels": ("_rels/.rels", RELS),
        "props": ("docProps/core.xml", CORE),
        "part": (part, b'<?xml version="1.0"?><document/>'),
    }
    orders = {
        "office": ["content", "rels", "props", "part"],
        "rels-first": ["rels", "content", "part", "props"],
        "props-first": ["props", "rels", "content", "part"],
        "part-first": ["part", "content", "rels", "props"],
    }
    return zip_of(*(members[key] for key in orders[order]))


def opendocument(mimetype: str, mimetype_first: bool) -> bytes:
    members = [
        ("mimetype", mimetype.encode()),
        ("content.xml", b'<?xml version="1.0"?><office:document-content/>'),
        ("META-INF/manifest.xml", b'<?xml version="1.0"?><manifest:manifest/>'),
    ]
    return zip_of(*(members if mimetype_first else members[1:] + members[:1]))


def epub(mimetype_first: bool) -> bytes:
    members = [
        ("mimetype", b"application/epub+zip"),
        ("META-INF/container.xml", b'<?xml version="1.0"?><container/>'),
        ("OEBPS/content.opf", b'<?xml version="1.0"?><package/>'),
    ]
    return zip_of(*(members if mimetype_first else members[1:] + members[:1]))


def jar(manifest_first: bool) -> bytes:
    members = [
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nCreated-By: test\r\n\r\n"),
        ("com/example/Main.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\x00" * 40),
    ]
    return zip_of(*(members if manifest_first else members[::-1]))


def apk(manifest_first: bool) -> bytes:
    members = [
        ("AndroidManifest.xml", b"\x03\x00\x08\x00" + b"\x00" * 60),
        ("classes.dex", b"dex\n035\x00" + b"\x00" * 100),
        ("resources.arsc", b"\x02\x00\x0c\x00" + b"\x00" * 60),
    ]
    return zip_of(*(members if manifest_first else members[::-1]))


def ole_compound_file() -> bytes:
    """A minimal valid OLE compound file (MS-CFB version 3): a header, one FAT sector and one
    directory sector holding the root storage."""
    free, end_of_chain, fat_sector, no_stream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("d0cf11e0a1b11ae1"),  # signature
        bytes(16),  # CLSID
        0x3E,  # minor version
        3,  # major version: 512-byte sectors
        0xFFFE,  # byte order: little-endian
        9,  # sector shift: 2**9
        6,  # mini sector shift: 2**6
        bytes(6),
        0,  # directory sectors (always 0 in version 3)
        1,  # FAT sectors
        1,  # first directory sector
        0,  # transaction signature
        0x1000,  # mini stream cutoff
        end_of_chain,  # first mini FAT sector: none
        0,
        end_of_chain,  # first DIFAT sector: none
        0,
    ) + struct.pack("<109I", 0, *[free] * 108)  # the FAT is sector 0
    fat = struct.pack("<128I", fat_sector, end_of_chain, *[free] * 126)
    entry = "<64sHBBIII16sIQQIQ"
    name = "Root Entry".encode("utf-16-le") + b"\x00\x00"
    root = struct.pack(
        entry, name, len(name), 5, 1, no_stream, no_stream, no_stream, bytes(16), 0, 0, 0,
        end_of_chain, 0,
    )  # fmt: skip
    unused = struct.pack(
        entry, b"", 0, 0, 0, no_stream, no_stream, no_stream, bytes(16), 0, 0, 0, 0, 0
    )
    assert len(header) == 512 and len(fat) == 512 and len(root) == len(unused) == 128
    return header + fat + root + unused * 3


SVG_BODY = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>\n'
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de")
HTML = b"<!DOCTYPE html>\n<html><body><script>alert(document.cookie)</script></body></html>\n"
OLE = ole_compound_file()

# -- the table --------------------------------------------------------------------------------
#: (id, content, filename, expected content type)
SPECIALISED = [
    *[
        (f"{ext}-{order}", ooxml(part, order), f"report.{ext}", expected)
        for ext, part, expected in [
            ("docx", "word/document.xml", DOCX),
            ("xlsx", "xl/workbook.xml", XLSX),
            ("pptx", "ppt/presentation.xml", PPTX),
        ]
        for order in ("office", "rels-first", "props-first", "part-first")
    ],
    *[
        (f"{ext}-mimetype-{where}", opendocument(ODF + kind, first), f"minutes.{ext}", ODF + kind)
        for ext, kind in [("odt", "text"), ("ods", "spreadsheet"), ("odp", "presentation")]
        for where, first in [("first", True), ("last", False)]
    ],
    ("epub-mimetype-first", epub(True), "book.epub", "application/epub+zip"),
    ("epub-mimetype-last", epub(False), "book.epub", "application/epub+zip"),
    ("jar-manifest-first", jar(True), "tool.jar", "application/java-archive"),
    ("jar-manifest-last", jar(False), "tool.jar", "application/java-archive"),
    ("apk-manifest-first", apk(True), "app.apk", "application/vnd.android.package-archive"),
    ("apk-manifest-last", apk(False), "app.apk", "application/vnd.android.package-archive"),
    ("ole-doc", OLE, "letter.doc", "application/msword"),
    ("ole-xls", OLE, "budget.xls", "application/vnd.ms-excel"),
    ("ole-ppt", OLE, "slides.ppt", "application/vnd.ms-powerpoint"),
    ("ole-msg", OLE, "mail.msg", "application/vnd.ms-outlook"),
    ("ole-msi", OLE, "setup.msi", "application/x-msi"),
    ("svg-declaration", XML_DECLARATION + SVG_BODY, "logo.svg", "image/svg+xml"),
    ("svg-bare", SVG_BODY, "logo.svg", "image/svg+xml"),
    (
        "svg-comment-first",
        b"<!-- Generator: Inkscape -->\n" + SVG_BODY,
        "logo.svg",
        "image/svg+xml",
    ),
    (
        "svg-doctype",
        XML_DECLARATION
        + b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        + b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        + SVG_BODY,
        "logo.svg",
        "image/svg+xml",
    ),
    (
        "rss",
        XML_DECLARATION + b'<rss version="2.0"><channel><title>News</title></channel></rss>\n',
        "feed.rss",
        "application/rss+xml",
    ),
    (
        "atom",
        XML_DECLARATION + b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>\n',
        "feed.atom",
        "application/atom+xml",
    ),
    (
        "xsd",
        XML_DECLARATION
        + b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a"/>'
        + b"</xs:schema>\n",
        "types.xsd",
        "application/xml",
    ),
    ("csv", b"name,age\nalice,30\nbob,25\n", "people.csv", "text/csv"),
    ("tsv", b"name\tage\nalice\t30\nbob\t25\n", "people.tsv", "text/tab-separated-values"),
    ("json", b'{"a": [1, 2, 3], "b": null}\n', "data.json", "application/json"),
    (
        "geojson",
        b'{"type": "Point", "coordinates": [1, 2]}\n',
        "place.geojson",
        "application/geo+json",
    ),
    (
        "md",
        b"# Title\n\nSome *text* and a [link](https://example.com).\n",
        "README.md",
        "text/markdown",
    ),
    (
        "js",
        b"function add(a, b) { return a + b; }\nconsole.log(add(1, 2));\n",
        "app.js",
        "text/javascript",
    ),
    ("mjs", b"const x = 1;\nconsole.log(x);\n", "app.mjs", "text/javascript"),
    ("css", b"body { color: red; }\n.a > .b { margin: 0 }\n", "site.css", "text/css"),
    ("c-looking-css", b"#include <x>\nbody { color: red; }\n", "site.css", "text/css"),
    (
        "ics",
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n",
        "meeting.ics",
        "text/calendar",
    ),
    ("vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n", "subtitles.vtt", "text/vtt"),
    ("yaml", b"name: app\nitems:\n  - one\n  - two\n", "config.yaml", "application/yaml"),
    ("toml", b'[tool]\nname = "app"\n', "pyproject.toml", "application/toml"),
    ("html-fragment", b"<p>hello</p>\n", "page.html", "text/html"),
    ("unidentified-bytes", bytes(range(7, 64)) * 4, "book.epub", "application/epub+zip"),
]

#: A specific sniffed type is kept: content that contradicts its name, and content libmagic
#: names specifically (an ES module is application/javascript, the older name of its format).
KEPT = [
    ("png-named-docx", PNG, "report.docx", "image/png"),
    ("html-named-jpg", HTML, "photo.jpg", "text/html"),
    ("svg-named-png", SVG_BODY, "photo.png", "image/svg+xml"),
    ("zip-named-csv", zip_of(("a.txt", b"a")), "table.csv", "application/zip"),
    ("zip-named-doc", zip_of(("a.txt", b"a")), "letter.doc", "application/zip"),
    ("ole-named-docx", OLE, "report.docx", "application/x-ole-storage"),
    ("ole-named-jar", OLE, "tool.jar", "application/x-ole-storage"),
    ("text-named-docx", b"just some words\n", "report.docx", "text/plain"),
    ("text-named-png", b"just some words\n", "photo.png", "text/plain"),
    (
        "pdf-named-xlsx",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "x.xlsx",
        "application/pdf",
    ),
    ("docx-named-xlsx", ooxml("word/document.xml", "office"), "budget.xlsx", DOCX),
    ("rss-named-docx", XML_DECLARATION + b"<rss/>\n", "report.docx", "text/xml"),
    ("json-named-csv", b'{"a": 1}\n', "table.csv", "application/json"),
    ("es-module-named-mjs", b"export const y = 1;\n", "app.mjs", "application/javascript"),
]

#: Without a filename, libmagic's answer stands, container or not.
UNNAMED = [
    ("docx-rels-first", ooxml("word/document.xml", "rels-first"), "application/zip"),
    ("ole", OLE, "application/x-ole-storage"),
    ("rss", XML_DECLARATION + b"<rss/>\n", "text/xml"),
    ("css", b"body { color: red; }\n", "text/plain"),
]


def stored_type(content: bytes, filename: str | None) -> str:
    storage = MemoryFileStorage()
    return storage.info(storage.create(content, filename=filename)).content_type


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [case[1:] for case in SPECIALISED],
    ids=[case[0] for case in SPECIALISED],
)
def test_a_filename_specialises_the_container_libmagic_names(
    content: bytes, filename: str, expected: str
) -> None:
    assert stored_type(content, filename) == expected


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [case[1:] for case in KEPT],
    ids=[case[0] for case in KEPT],
)
def test_a_specific_sniffed_type_is_kept_whatever_the_name(
    content: bytes, filename: str, expected: str
) -> None:
    assert stored_type(content, filename) == expected


@pytest.mark.parametrize(
    ("content", "expected"), [case[1:] for case in UNNAMED], ids=[case[0] for case in UNNAMED]
)
def test_without_a_filename_libmagic_decides(content: bytes, expected: str) -> None:
    assert stored_type(content, None) == expected


def test_the_table_holds_files_libmagic_cannot_tell_from_their_container() -> None:
    """The premise of the rule, on this machine's libmagic: several of the files above are
    sniffed as their container only, so the specialisation tests do test the filename."""
    detector = _magic_detector()
    assert detector is not None
    sniffed = {case[0]: detector(case[1]) for case in SPECIALISED}
    assert sniffed["docx-rels-first"] == "application/zip"
    assert sniffed["ole-doc"] == "application/x-ole-storage"
    assert sniffed["rss"] == "text/xml"
    assert sniffed["css"] == "text/plain"
    containers = {"application/zip", "application/x-ole-storage", "text/xml", "text/plain"}
    assert sum(kind in containers for kind in sniffed.values()) >= 20
