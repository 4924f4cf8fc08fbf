"""What storages accept as content (sa_depot.io.utils): every input kind, refusals, and the
order in which the content type is decided."""

from __future__ import annotations

import io
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage as WerkzeugFileStorage

from sa_depot.exceptions import UnsupportedContent
from sa_depot.io.content_types import _magic_detector
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.io.utils import (
    SNIFF_BYTES,
    FileIntent,
    file_from_content,
    guess_content_type,
    prepare_content,
)

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20  # longer than the sniffed head
GIF = b"GIF89a" + b"\x00" * 50
OPAQUE = bytes.fromhex("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881") * 16


def prepared(content: Any, *args: Any) -> tuple[bytes, str | None, str]:
    stream, filename, content_type = prepare_content(content, *args)
    return stream.read(), filename, content_type


class ShortReads(io.RawIOBase):
    """Non-seekable; returns ``step`` bytes at most per read, and counts what was read."""

    def __init__(self, data: bytes, step: int = 3) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._step = step
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), self._step))
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)


class FakeUploadFile:
    """Starlette's UploadFile: ``file``, ``filename``, ``content_type`` and an *async* read."""

    def __init__(self, file: Any, filename: str | None, content_type: str | None) -> None:
        self.file = file
        self.filename = filename
        self.content_type = content_type

    async def read(self, size: int = -1) -> bytes:
        raise AssertionError("sa_depot must read .file, not await UploadFile.read()")


# -- the input kinds --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_content(kind: type) -> None:
    assert prepared(kind(PDF)) == (PDF, "unnamed", "application/pdf")


def test_a_seekable_binary_file_gives_its_name(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(PDF)
    with path.open("rb") as fileobj:
        assert prepared(fileobj) == (PDF, "report.pdf", "application/pdf")


def test_a_file_object_without_a_usable_name_is_unnamed_as_in_filedepot() -> None:
    assert prepared(io.BytesIO(PDF)) == (PDF, "unnamed", "application/pdf")
    stdin_like = io.BytesIO(PDF)
    stdin_like.name = "<stdin>"
    assert prepared(stdin_like)[1] == "unnamed"


def test_a_pipe_is_read_to_the_end() -> None:
    data = PDF * 100  # more than a pipe buffer: the writer blocks until we read
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_fd, "rb", buffering=0) as reader:
        assert not reader.seekable()
        assert prepared(reader) == (data, "unnamed", "application/pdf")
    feeder.join(10)


def test_a_stream_of_short_reads_is_sniffed_across_reads_and_read_lazily() -> None:
    data = PDF * 10
    stream = ShortReads(data, step=3)  # "%PD", "F-1", ... : the signature spans reads

    prepared_stream, filename, content_type = prepare_content(stream)

    assert content_type == "application/pdf"
    assert stream.consumed <= SNIFF_BYTES  # only the head is read ahead
    assert prepared_stream.read() == data


def test_file_intent_wins_over_what_the_content_carries(tmp_path: Path) -> None:
    path = tmp_path / "carried.pdf"
    path.write_bytes(PDF)
    with path.open("rb") as fileobj:
        intent = FileIntent(fileobj, "given.bin", "application/x-given")
        assert prepared(intent) == (PDF, "given.bin", "application/x-given")


def test_file_intent_without_a_type_detects_it() -> None:
    assert prepared(FileIntent(PDF, "doc.pdf", None)) == (PDF, "doc.pdf", "application/pdf")


def test_explicit_arguments_win_over_a_file_intent() -> None:
    intent = FileIntent(PDF, "given.bin", "application/x-given")
    assert prepared(intent, "explicit.pdf", "application/x-explicit") == (
        PDF,
        "explicit.pdf",
        "application/x-explicit",
    )


def test_cgi_field_storage_like_objects() -> None:
    field = SimpleNamespace(file=io.BytesIO(b"a,b\n1,2\n"), filename="data.csv", type="text/csv")
    assert prepared(field) == (b"a,b\n1,2\n", "data.csv", "text/csv")


def test_werkzeug_file_storage() -> None:
    upload = WerkzeugFileStorage(
        stream=io.BytesIO(PDF),
        filename="C:\\Users\\me\\Report.pdf",  # old browsers send the client's full path
        content_type="application/pdf; name=Report.pdf",
    )
    assert prepared(upload) == (PDF, "Report.pdf", "application/pdf")


def test_werkzeug_file_storage_without_filename_or_type() -> None:
    upload = WerkzeugFileStorage(stream=io.BytesIO(PDF))
    assert prepared(upload) == (PDF, "unnamed", "application/pdf")


def test_starlette_upload_file() -> None:
    upload = FakeUploadFile(io.BytesIO(PDF), "upload.pdf", "application/x-declared")
    assert prepared(upload) == (PDF, "upload.pdf", "application/x-declared")


@pytest.mark.parametrize("filename", ["", None])
def test_starlette_upload_file_without_filename_is_read_through_its_file(
    filename: str | None,
) -> None:
    upload = FakeUploadFile(io.BytesIO(PDF), filename, None)
    assert prepared(upload) == (PDF, "unnamed", "application/pdf")


def test_a_stored_file_of_another_storage() -> None:
    source = MemoryFileStorage()
    file_id = source.create(PDF, "source.pdf", "application/x-source")
    with source.get(file_id) as stored:
        assert prepared(stored) == (PDF, "source.pdf", "application/x-source")


def test_file_from_content_gives_filedepots_pair() -> None:
    must_close, fileobj = file_from_content(bytearray(b"compat"))
    assert must_close and fileobj.read() == b"compat"
    source = io.BytesIO(b"read already")
    source.read()
    must_close, fileobj = file_from_content(source)
    assert not must_close and fileobj is source and fileobj.read() == b"read already"


# -- refusals ---------------------------------------------------------------------------------
def test_a_str_is_refused_with_advice_to_pass_bytes() -> None:
    with pytest.raises(UnsupportedContent, match=r"str.*encode\('utf-8'\)") as raised:
        prepare_content("some text")
    assert isinstance(raised.value, TypeError)


def test_a_text_mode_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("text")
    storage = MemoryFileStorage()
    with path.open("r") as text_file, pytest.raises(UnsupportedContent, match="binary mode"):
        storage.create(text_file)
    with pytest.raises(UnsupportedContent, match="binary mode"):
        prepare_content(io.StringIO("text"))
    assert storage.list() == []


def test_a_text_stream_returning_str_after_the_head_is_refused() -> None:
    class TurnsToText(io.RawIOBase):
        def __init__(self) -> None:
            super().__init__()
            self._calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> Any:
            self._calls += 1
            return b"x" * SNIFF_BYTES if self._calls == 1 else "now text"

    stream, _, _ = prepare_content(TurnsToText())
    stream.read(SNIFF_BYTES)
    with pytest.raises(UnsupportedContent, match="binary mode"):
        stream.read(10)


@pytest.mark.parametrize("content", [42, object(), None, ["a", "list"]])
def test_objects_that_cannot_be_read_are_refused(content: object) -> None:
    with pytest.raises(UnsupportedContent, match="pass bytes, a binary file object"):
        prepare_content(content)


# -- content type order -----------------------------------------------------------------------
def test_an_explicit_type_wins_over_libmagic() -> None:
    assert prepared(PDF, "doc.pdf", "application/x-explicit")[2] == "application/x-explicit"


def test_libmagic_wins_over_the_filename() -> None:
    assert prepared(PDF, "notes.txt")[2] == "application/pdf"
    assert prepared(GIF, "picture.png")[2] == "image/gif"


def test_the_filename_refines_a_generic_libmagic_answer() -> None:
    assert prepared(b"body { color: red; }\n", "style.css")[2] == "text/css"
    assert prepared(b"a,b\n1,2\n", "data.csv")[2] == "text/csv"
    assert prepared(b"a,b\n1,2\n")[2] == "text/plain"


def test_the_filename_decides_when_libmagic_has_nothing_to_sniff() -> None:
    assert prepared(b"", "photo.jpg")[2] == "image/jpeg"


def test_octet_stream_when_nothing_is_known() -> None:
    assert prepared(OPAQUE)[2] == "application/octet-stream"
    assert prepared(OPAQUE, "blob.unknownext")[2] == "application/octet-stream"
    assert prepared(b"")[2] == "application/octet-stream"


@pytest.fixture
def without_libmagic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if python-magic (or libmagic) were not installed: ``import magic`` fails."""
    monkeypatch.setitem(sys.modules, "magic", None)
    _magic_detector.cache_clear()
    yield
    _magic_detector.cache_clear()  # the next test loads the real libmagic again


@pytest.mark.usefixtures("without_libmagic")
def test_without_libmagic_types_come_from_filenames_with_one_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = guess_content_type(PDF, "notes.txt")
        second = guess_content_type(PDF, "doc.pdf")
        third = guess_content_type(PDF, None)

    assert (first, second, third) == ("text/plain", "application/pdf", "application/octet-stream")
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1
    assert "libmagic is unavailable" in str(runtime[0].message)
    assert "libmagic1" in str(runtime[0].message)  # says what to install


@pytest.mark.usefixtures("without_libmagic")
def test_storing_without_libmagic_uses_the_filename() -> None:
    storage = MemoryFileStorage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        file_id = storage.create(GIF, "picture.png")
    assert storage.info(file_id).content_type == "image/png"


class _NonBlocking(io.RawIOBase):
    """A raw stream that has data, then says "nothing ready yet" (None) mid-way."""

    def __init__(self) -> None:
        self._answers: list[bytes | None] = [b"x" * 4096, None, b"y" * 10]

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes | None:  # type: ignore[override]
        return self._answers.pop(0) if self._answers else b""


def test_a_non_blocking_stream_is_refused_not_truncated() -> None:
    storage = MemoryFileStorage()
    with pytest.raises(UnsupportedContent, match="non-blocking"):
        storage.create(_NonBlocking())
    assert storage.list() == []


def test_a_file_intent_without_type_keeps_the_uploads_declared_type() -> None:
    class Upload:
        filename = "report.bin"
        content_type = "application/x-custom"
        file = io.BytesIO(b"\x00\x01\x02")

    storage = MemoryFileStorage()
    file_id = storage.create(FileIntent(Upload(), None, None))
    with storage.get(file_id) as stored:
        assert stored.content_type == "application/x-custom"
        assert stored.filename == "report.bin"
