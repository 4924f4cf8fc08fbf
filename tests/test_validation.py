"""Validation while content streams in (sa_depot.io.validation): every validator against every
kind of input a storage accepts, the size limit that stops reading, image headers read
without decoding, and nothing left in the storage when a file is refused."""

from __future__ import annotations

import io
import mimetypes
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.datastructures import Headers
from starlette.datastructures import UploadFile as StarletteUpload
from werkzeug.datastructures import FileStorage as WerkzeugUpload

from sa_depot.exceptions import ConfigurationError, ValidationFailed
from sa_depot.io.local import LocalFileStorage
from sa_depot.io.utils import FileIntent, ValidatedContent
from sa_depot.io.validation import (
    Candidate,
    ContentTypes,
    Extensions,
    GiB,
    ImageDimensions,
    MaxSize,
    MiB,
    MinSize,
    Validation,
    Validator,
)
from sa_depot.testing.streams import GeneratedStream


def image(width: int, height: int, image_format: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, image_format, **options)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none (a decompression bomb's
    first bytes, without its payload)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


PNG = image(32, 32)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


def no_secrets(candidate: Candidate) -> str | None:
    """A user validator."""
    return "secret files are not accepted" if "secret" in candidate.filename else None


@dataclass
class Case:
    """A validator, content it accepts and content it refuses (with the rules broken)."""

    validator: Validator | Callable[[Candidate], str | None]
    good: tuple[bytes, str]
    bad: tuple[bytes, str]
    rules: set[str]


CASES: dict[str, Case] = {
    "max_size": Case(MaxSize(4096), (b"a" * 4096, "a.txt"), (b"a" * 4097, "a.txt"), {"max_size"}),
    "min_size": Case(MinSize(10), (b"a" * 10, "a.txt"), (b"a" * 9, "a.txt"), {"min_size"}),
    "content_type": Case(
        ContentTypes("image/png", "image/jpeg"),
        (PNG, "a.png"),
        (PDF, "a.png"),  # a PDF named (and, by the browser, declared) as a PNG
        {"content_type"},
    ),
    "extension": Case(Extensions(".png", "jpg"), (PNG, "A.PNG"), (PNG, "a.exe"), {"extension"}),
    "image_dimensions": Case(
        ImageDimensions(max_width=64, max_height=64, max_pixels=64 * 40),
        (PNG, "a.png"),
        (image(100, 30), "a.png"),
        {"max_width", "max_pixels"},
    ),
    "user": Case(no_secrets, (b"text", "notes.txt"), (b"text", "secret.txt"), {"no_secrets"}),
}


class NonSeekable(io.RawIOBase):
    """A stream from a request body: non-seekable, named, short reads."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def declared(filename: str) -> str:
    """The type a browser declares: the one the filename's extension names."""
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def on_disk(tmp: Path, data: bytes, filename: str) -> Any:
    path = tmp / "upload" / filename
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path.open("rb")


#: input kind -> (tmp, data, filename) -> (content, filename given to store() or None)
KINDS: dict[str, Callable[[Path, bytes, str], tuple[Any, str | None]]] = {
    "bytes": lambda tmp, data, name: (data, name),
    "file": lambda tmp, data, name: (on_disk(tmp, data, name), None),
    "stream": lambda tmp, data, name: (NonSeekable(data, name), None),
    "FileIntent": lambda tmp, data, name: (FileIntent(io.BytesIO(data), name, None), None),
    "werkzeug": lambda tmp, data, name: (
        WerkzeugUpload(io.BytesIO(data), name, content_type=declared(name)),
        None,
    ),
    "starlette": lambda tmp, data, name: (
        StarletteUpload(
            io.BytesIO(data), filename=name, headers=Headers({"content-type": declared(name)})
        ),
        None,
    ),
}


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    return LocalFileStorage(str(tmp_path / "storage"), fsync=False)


def files_in(tmp_path: Path) -> list[Path]:
    """Every file under the storage's directory, temporary ones included."""
    return [p for p in (tmp_path / "storage").rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rule", CASES)
def test_every_validator_on_every_input_kind(
    storage: LocalFileStorage, tmp_path: Path, rule: str, kind: str
) -> None:
    case = CASES[rule]
    validation = Validation([case.validator])
    content, filename = KINDS[kind](tmp_path, *case.good)
    file_id = storage.create(ValidatedContent(content, validation), filename)
    with storage.get(file_id) as stored:
        assert stored.read() == case.good[0]
    kept = files_in(tmp_path)

    content, filename = KINDS[kind](tmp_path, *case.bad)
    with pytest.raises(ValidationFailed) as raised:
        storage.create(ValidatedContent(content, validation), filename)
    assert {v.rule for v in raised.value.violations} == case.rules
    assert isinstance(raised.value, ValueError)
    assert storage.list() == [file_id]
    assert files_in(tmp_path) == kept  # the refused file left nothing, not even a part


@pytest.mark.parametrize("rule", CASES)
def test_every_validator_on_a_stored_file(storage: LocalFileStorage, rule: str) -> None:
    """Files stored without the validation (UploadedFile(content) made elsewhere) are checked
    from their head and recorded length."""
    case = CASES[rule]
    validation = Validation([case.validator])
    with storage.get(storage.create(*case.good)) as stored:
        validation.check_stored(stored)
    with storage.get(storage.create(*case.bad)) as stored, pytest.raises(ValidationFailed) as e:
        validation.check_stored(stored)
    assert {v.rule for v in e.value.violations} == case.rules


def test_every_violation_is_listed_with_its_limit_and_actual_value(
    storage: LocalFileStorage,
) -> None:
    validation = Validation([case.validator for case in CASES.values()])
    with pytest.raises(ValidationFailed) as raised:
        storage.create(ValidatedContent(FileIntent(image(100, 30), "secret.exe", None), validation))
    found = {v.rule: (v.limit, v.actual) for v in raised.value.violations}
    # known before anything is written: the head's rules and the size of bytes
    assert found == {
        "extension": ((".png", ".jpg"), ".exe"),
        "max_width": (64, 100),
        "max_pixels": (2560, 3000),
    }
    assert "'secret.exe' does not end with one of .png, .jpg" in str(raised.value)
    # at the end: the rules that need the whole content, together
    with pytest.raises(ValidationFailed) as raised:
        storage.create(
            ValidatedContent(
                NonSeekable(b"tiny", "secret.png"),
                Validation([MinSize(10), no_secrets, ContentTypes("text/*")]),
            )
        )
    assert [(v.rule, v.limit, v.actual) for v in raised.value.violations] == [
        ("min_size", 10, 4),
        ("no_secrets", None, None),
    ]


class CountingStream(GeneratedStream):
    """Generated content that counts what was read of it."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.read_bytes = 0

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.read_bytes += n
        return n


def test_a_10_gib_upload_to_a_10_mib_field_reads_about_10_mib(
    storage: LocalFileStorage, tmp_path: Path
) -> None:
    stream = CountingStream(10 * GiB)
    with pytest.raises(ValidationFailed) as raised:
        storage.create(ValidatedContent(stream, Validation([MaxSize(10 * MiB)])))
    assert 10 * MiB < stream.read_bytes <= 10 * MiB + 1
    [violation] = raised.value.violations
    assert (violation.rule, violation.limit, violation.actual) == (
        "max_size",
        10 * MiB,
        10 * MiB + 1,
    )
    assert storage.list() == [] and files_in(tmp_path) == []


def test_a_large_file_on_disk_is_refused_from_its_size_without_reading_it(
    storage: LocalFileStorage, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as handle:
        handle.truncate(64 * MiB)  # sparse
    with path.open("rb") as handle:
        with pytest.raises(ValidationFailed) as raised:
            storage.create(ValidatedContent(handle, Validation([MaxSize(MiB)])))
        assert handle.tell() <= 4096
    assert raised.value.violations[0].actual == 64 * MiB


@pytest.mark.parametrize(
    ("width", "height"), [(5000, 5000), (100_000, 100_000)], ids=["large", "pillow-bomb"]
)
def test_a_decompression_bomb_is_refused_from_its_header(
    storage: LocalFileStorage, width: int, height: int
) -> None:
    bomb = png_header(width, height)  # a real bomb holds compressed zeros: never decoded here
    validation = Validation([ImageDimensions(max_pixels=4_000_000)])
    with pytest.raises(ValidationFailed) as raised:
        storage.create(ValidatedContent(FileIntent(bomb, "bomb.png", None), validation))
    [violation] = raised.value.violations
    assert violation.rule == "max_pixels"
    assert violation.actual == width * height
    assert storage.list() == []


def test_an_image_header_beyond_the_sniffed_bytes_is_read_further(
    storage: LocalFileStorage,
) -> None:
    exif = b"Exif\x00\x00" + b"\x00" * 60_000  # metadata before the JPEG frame header
    big_header = image(80, 20, "JPEG", exif=exif)
    assert len(big_header) > 60_000
    validation = Validation([ImageDimensions(max_width=64)])
    with pytest.raises(ValidationFailed) as raised:
        storage.create(ValidatedContent(NonSeekable(big_header, "photo.jpg"), validation))
    assert [(v.rule, v.actual) for v in raised.value.violations] == [("max_width", 80)]
    small = image(40, 20, "JPEG", exif=exif)
    file_id = storage.create(ValidatedContent(NonSeekable(small, "photo.jpg"), validation))
    with storage.get(file_id) as stored:
        assert stored.read() == small  # the head read ahead is written, not lost

    with pytest.raises(ValidationFailed) as raised:
        limited = Validation([ImageDimensions(max_width=64, header_limit=8192)])
        storage.create(ValidatedContent(NonSeekable(small, "photo.jpg"), limited))
    assert "no image header ends within its first 8192 bytes" in str(raised.value)


def test_content_that_is_no_image_is_refused_by_image_dimensions(
    storage: LocalFileStorage,
) -> None:
    validation = Validation([ImageDimensions(max_width=10)])
    with pytest.raises(ValidationFailed) as raised:
        storage.create(ValidatedContent(FileIntent(PDF, "fake.png", None), validation))
    [violation] = raised.value.violations
    assert (violation.rule, violation.actual) == ("image", "application/pdf")


def test_content_type_is_sniffed_with_the_container_rules(storage: LocalFileStorage) -> None:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # _rels first: libmagic only sees a zip
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr("word/document.xml", "<document/>")
    docx = buffer.getvalue()
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    validation = Validation([ContentTypes(docx_type)])
    storage.create(ValidatedContent(FileIntent(docx, "letter.docx", None), validation))
    with pytest.raises(ValidationFailed) as raised:  # the same zip, named as a spreadsheet
        storage.create(ValidatedContent(FileIntent(docx, "letter.xlsx", None), validation))
    assert raised.value.violations[0].actual.endswith("spreadsheetml.sheet")
    with pytest.raises(ValidationFailed) as raised:  # a declared type is checked too
        storage.create(ValidatedContent(FileIntent(docx, "letter.docx", "text/html"), validation))
    assert [v.actual for v in raised.value.violations] == ["text/html"]


def test_wrong_validator_options_are_named() -> None:
    with pytest.raises(ConfigurationError, match="max_size is a whole number"):
        MaxSize(-1)
    with pytest.raises(ConfigurationError, match="media types such as"):
        ContentTypes("png")
    with pytest.raises(ConfigurationError, match="a validator is a"):
        Validation(["10 MiB"])  # type: ignore[list-item]
