"""The checks of the storage contract (:mod:`sa_depot.io.interfaces`), one function each.

Every check takes a :class:`LintContext` and raises ``AssertionError`` (with a message saying
what the storage did wrong) when the storage breaks the contract. :data:`CHECKS` lists them by
name; :func:`sa_depot.testing.lint_storage` runs them. A check may create files; the runner
deletes whatever a check left, so checks compare listings with :attr:`LintContext.before`.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sa_depot.exceptions import (
    FileNotFound,
    InvalidFileId,
    InvalidKey,
    StorageError,
    UnsupportedContent,
)
from sa_depot.io.interfaces import FileStorage, ResponseOverrides, StoredFile
from sa_depot.io.keys import KeyTemplate
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.io.utils import FileIntent
from sa_depot.testing.streams import FailingStream, GeneratedStream, InputBroke, ShortReadStream
from sa_depot.testing.workers import create_files

MiB = 1024 * 1024
PDF_HEAD = b"%PDF-1.4\n"
ABSENT_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
#: The size of the large file of the memory check, and the peak memory growth it allows: a few
#: chunks and parts plus allocator slack, far below the file's size.
LARGE_FILE_SIZE = 256 * MiB
MEMORY_BOUND = 40 * MiB


@dataclass
class LintContext:
    """What a check works with."""

    #: The storage under test.
    storage: FileStorage
    #: A scratch directory.
    workdir: Path
    #: ``DepotManager.from_config`` options opening the same storage in another process;
    #: enables the checks that need one (concurrent processes, peak memory).
    config: dict[str, str] | None = None
    #: Everything the backend holds, temporary and incomplete artefacts included (for local
    #: storage: every file under its directory). Lets the failed-write checks see leftovers
    #: that ``list()`` would not show.
    raw_contents: Callable[[FileStorage], set[str]] | None = None
    large_file_size: int = LARGE_FILE_SIZE
    memory_bound: int = MEMORY_BOUND
    #: The ids present before the check ran.
    before: set[str] = field(default_factory=set)
    #: What the check measured, for the report (the memory check's RSS figures...).
    measured: dict[str, Any] = field(default_factory=dict)

    def ids(self) -> set[str]:
        """The ids the check's files have: what ``list()`` gives, less what was there."""
        listed = self.storage.list()
        assert len(listed) == len(set(listed)), f"list() repeats ids: {sorted(listed)}"
        return set(listed) - self.before

    def raw(self) -> set[str]:
        return self.raw_contents(self.storage) if self.raw_contents else set()


CheckFunction = Callable[[LintContext], None]


@dataclass(frozen=True)
class Check:
    """One check of the contract."""

    name: str
    function: CheckFunction
    #: ``'config'`` when the check needs :attr:`LintContext.config`.
    needs: frozenset[str] = frozenset()
    #: Whether the check takes long (the large file).
    slow: bool = False

    @property
    def doc(self) -> str:
        return (self.function.__doc__ or "").strip().splitlines()[0]

    def __str__(self) -> str:
        return self.name


CHECKS: dict[str, Check] = {}


def check(
    *, needs: tuple[str, ...] = (), slow: bool = False
) -> Callable[[CheckFunction], CheckFunction]:
    def register(function: CheckFunction) -> CheckFunction:
        name = function.__name__.removeprefix("check_")
        CHECKS[name] = Check(name, function, frozenset(needs), slow)
        return function

    return register


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_back(storage: FileStorage, file_id: str) -> bytes:
    with storage.get(file_id) as stored:
        return stored.read()


def payload(storage: FileStorage, seed: str = "") -> bytes:
    """A PDF-looking content spanning two and a half chunks of ``storage``."""
    size = storage.chunk_size * 5 // 2
    body = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
    return PDF_HEAD + body[: size - len(PDF_HEAD)]


# -- every kind of input ----------------------------------------------------------------------
def _pipe(data: bytes, stack: ExitStack) -> Any:
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(data)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    stack.callback(lambda: feeder.join(10))
    stack.callback(reader.close)
    return reader


def _real_file(data: bytes, workdir: Path, stack: ExitStack) -> Any:
    path = workdir / "report.pdf"
    path.write_bytes(data)
    return stack.enter_context(path.open("rb"))


def _stored_file(data: bytes, stack: ExitStack) -> StoredFile:
    other = MemoryFileStorage()
    return stack.enter_context(other.get(other.create(data, "source.pdf", "application/x-src")))


def _werkzeug(data: bytes) -> Any:
    from werkzeug.datastructures import FileStorage as WerkzeugFileStorage

    return WerkzeugFileStorage(
        stream=io.BytesIO(data), filename="werkzeug.pdf", content_type="application/x-wz"
    )


# name -> (build(data, workdir, stack), expected filename, expected type)
INPUT_KINDS: dict[str, tuple[Callable[[bytes, Path, ExitStack], Any], str | None, str]] = {
    "bytes": (lambda d, w, s: bytes(d), "unnamed", "application/pdf"),
    "bytearray": (lambda d, w, s: bytearray(d), "unnamed", "application/pdf"),
    "memoryview": (lambda d, w, s: memoryview(d), "unnamed", "application/pdf"),
    "seekable file": (lambda d, w, s: _real_file(d, w, s), "report.pdf", "application/pdf"),
    "BytesIO": (lambda d, w, s: io.BytesIO(d), "unnamed", "application/pdf"),
    "pipe": (lambda d, w, s: _pipe(d, s), "unnamed", "application/pdf"),
    "short reads": (lambda d, w, s: ShortReadStream(d), "unnamed", "application/pdf"),
    "FileIntent": (
        lambda d, w, s: FileIntent(io.BytesIO(d), "given.bin", "application/x-given"),
        "given.bin",
        "application/x-given",
    ),
    "cgi.FieldStorage-like": (
        lambda d, w, s: SimpleNamespace(
            file=io.BytesIO(d), filename="cgi.pdf", type="application/x-cgi"
        ),
        "cgi.pdf",
        "application/x-cgi",
    ),
    "Starlette UploadFile-like": (
        lambda d, w, s: SimpleNamespace(
            file=io.BytesIO(d), filename="upload.pdf", content_type="application/x-up"
        ),
        "upload.pdf",
        "application/x-up",
    ),
    "StoredFile of another storage": (
        lambda d, w, s: _stored_file(d, s),
        "source.pdf",
        "application/x-src",
    ),
}
try:
    import werkzeug  # noqa: F401 - an optional extra: checked where installed

    INPUT_KINDS["Werkzeug FileStorage"] = (
        lambda d, w, s: _werkzeug(d),
        "werkzeug.pdf",
        "application/x-wz",
    )
except ImportError:
    pass


@check()
def check_create_accepts_every_input_kind(ctx: LintContext) -> None:
    """create() stores bytes, files, pipes, uploads and StoredFiles with their metadata."""
    storage = ctx.storage
    for kind, (build, filename, content_type) in INPUT_KINDS.items():
        data = payload(storage, kind)
        with ExitStack() as stack:
            file_id = storage.create(build(data, ctx.workdir, stack))
        with storage.get(file_id) as stored:
            got = (stored.read() == data, stored.filename, stored.content_type)
            assert got == (True, filename, content_type), (
                f"{kind}: read back (same content, filename, type) = {got}, expected "
                f"{(True, filename, content_type)}"
            )
            assert stored.content_length == len(data), f"{kind}: wrong content_length"
            assert stored.checksum == sha256(data), f"{kind}: wrong checksum"


@check()
def check_a_str_is_refused(ctx: LintContext) -> None:
    """A str is refused with UnsupportedContent (a TypeError) and nothing is stored."""
    try:
        ctx.storage.create("text is not bytes")
    except UnsupportedContent as exc:
        assert isinstance(exc, TypeError)
    else:
        raise AssertionError("create('text') did not raise UnsupportedContent")
    assert ctx.ids() == set(), "a refused str left a file"


# -- sizes, names and metadata ----------------------------------------------------------------
@check()
def check_empty_file(ctx: LintContext) -> None:
    """An empty file is stored and read back with its length, checksum and filename."""
    file_id = ctx.storage.create(b"", "empty.txt")
    with ctx.storage.get(file_id) as stored:
        assert stored.read() == b""
        assert stored.content_length == 0, f"content_length {stored.content_length}"
        assert stored.checksum == sha256(b"")
        assert stored.filename == "empty.txt"


@check()
def check_multi_chunk_files(ctx: LintContext) -> None:
    """Files of several chunks read back identical, in chunks no larger than asked."""
    storage = ctx.storage
    for chunks in (0.5, 1, 2, 3.25):
        size = int(storage.chunk_size * chunks)
        data = os.urandom(size)
        file_id = storage.create(io.BytesIO(data), "random.bin")
        with storage.get(file_id) as stored:
            parts = list(stored.chunks(storage.chunk_size))
            assert all(len(part) <= storage.chunk_size for part in parts), (
                f"chunks() gave parts larger than {storage.chunk_size} bytes"
            )
            assert b"".join(parts) == data, f"{chunks} chunks: content differs"
            assert stored.content_length == size and stored.checksum == sha256(data)
        assert read_back(storage, file_id) == data


UNICODE_FILENAMES = [
    "résumé.pdf",
    "履歴書 2024.pdf",
    "📎 attachment.bin",
    "quote\"and'apostrophe.txt",
    "100% sure.txt",
    "a%20b.txt",
]


@check()
def check_unicode_filenames(ctx: LintContext) -> None:
    """Non-ASCII filenames (and ones that look percent-encoded) come back unchanged."""
    for filename in UNICODE_FILENAMES:
        file_id = ctx.storage.create(b"content", filename)
        assert ctx.storage.info(file_id).filename == filename, (
            f"info() gave {ctx.storage.info(file_id).filename!r} for {filename!r}"
        )
        with ctx.storage.get(file_id) as stored:
            assert stored.filename == stored.name == filename


@check()
def check_metadata(ctx: LintContext) -> None:
    """get() and info() give filename, type, length, checksum and an aware UTC time."""
    data = PDF_HEAD + b"body" * 100
    before = datetime.now(timezone.utc).replace(microsecond=0)
    file_id = ctx.storage.create(data, "report.pdf")
    after = datetime.now(timezone.utc)
    with ctx.storage.get(file_id) as stored:
        assert stored.file_id == file_id
        assert (stored.filename, stored.content_type) == ("report.pdf", "application/pdf")
        assert stored.content_length == len(data) and stored.checksum == sha256(data)
        assert stored.last_modified.tzinfo is not None, "last_modified is naive"
        assert before <= stored.last_modified <= after, (
            f"last_modified {stored.last_modified} is not the time of the upload"
        )
        info = stored.info
    assert ctx.storage.info(file_id) == info, "info() differs from get().info"


@check()
def check_content_type(ctx: LintContext) -> None:
    """An explicit type wins over detection; unknown content is application/octet-stream."""
    file_id = ctx.storage.create(PDF_HEAD + b"x", "report.pdf", content_type="application/x-mine")
    assert ctx.storage.info(file_id).content_type == "application/x-mine"
    file_id = ctx.storage.create(hashlib.sha256(b"x").digest() * 16)  # libmagic: no idea
    assert ctx.storage.info(file_id).content_type == "application/octet-stream"


@check()
def check_public_url(ctx: LintContext) -> None:
    """public_url() is None or a URL serving the content, for an id or a StoredFile, with or
    without response overrides (a URL must then carry them: the store sends them)."""
    storage = ctx.storage
    data = b"public?"
    plain = storage.create(data, "p.txt")
    # a readable key with what URLs must escape: spaces, '&', '+', '%', non-ASCII, '/'
    keyed = storage.create(
        data, "Résumé 100% final+1.txt", key="Société {tenant}/{id}/{filename}",
        key_values={"tenant": "a&b"},
    )  # fmt: skip
    for file_id in (plain, keyed):
        url = storage.public_url(file_id)
        overrides = ResponseOverrides("text/plain", 'attachment; filename="p.txt"')
        with storage.get(file_id) as stored:
            assert (storage.public_url(stored) is None) is (url is None)
            assert (stored.public_url is None) is (url is None)
            with_overrides = storage.public_url(stored, response=overrides)
        for candidate in (url, with_overrides):
            if candidate is None:
                continue
            assert candidate.startswith(("https://", "http://")), f"not a URL: {candidate!r}"
            with urllib.request.urlopen(candidate, timeout=30) as response:
                assert response.read() == data, f"{candidate} does not serve {file_id!r}"


# -- reading ----------------------------------------------------------------------------------
@check()
def check_seek_and_partial_reads(ctx: LintContext) -> None:
    """read(n), seek() and tell() behave as on a file (or seek raises OSError)."""
    data = bytes(range(256)) * 4
    file_id = ctx.storage.create(data)
    with ctx.storage.get(file_id) as stored:
        assert stored.read(10) == data[:10] and stored.read(0) == b""
        if not stored.seekable():
            try:
                stored.seek(0)
            except OSError:
                pass
            else:
                raise AssertionError("seekable() is false but seek() worked")
            assert stored.read() == data[10:]
            return
        assert stored.tell() == 10
        assert stored.seek(100) == 100 and stored.read(5) == data[100:105]
        assert stored.tell() == 105
        assert stored.seek(-3, io.SEEK_END) == len(data) - 3
        assert stored.read() == data[-3:] and stored.read(10) == b""
        stored.seek(-10, io.SEEK_CUR)
        assert stored.read(4) == data[-10:-6]
        stored.seek(0)
        assert stored.read() == data


@check()
def check_stored_file_closes(ctx: LintContext) -> None:
    """A StoredFile is a context manager; reading it once closed raises ValueError."""
    file_id = ctx.storage.create(b"data")
    with ctx.storage.get(file_id) as stored:
        assert stored.readable()
    assert stored.closed
    try:
        stored.read()
    except ValueError:
        pass
    else:
        raise AssertionError("read() of a closed StoredFile did not raise ValueError")


# -- replace ----------------------------------------------------------------------------------
@check()
def check_replace(ctx: LintContext) -> None:
    """replace() keeps the id with new content and metadata; the filename is kept when the
    content has none; an absent id raises FileNotFound; a file replaces itself."""
    storage = ctx.storage
    file_id = storage.create(b"old plain text", "old.txt")
    old = storage.info(file_id)
    new_data = PDF_HEAD + b"new content"
    assert storage.replace(file_id, new_data, "new.pdf") == file_id
    with storage.get(file_id) as stored:
        assert stored.read() == new_data
        assert (stored.filename, stored.content_type) == ("new.pdf", "application/pdf")
        assert stored.content_length == len(new_data) and stored.checksum == sha256(new_data)
        assert stored.last_modified >= old.last_modified
    assert ctx.ids() == {file_id}

    storage.replace(file_id, b"newer")
    assert storage.info(file_id).filename == "new.pdf", "replace() lost the filename"
    assert read_back(storage, file_id) == b"newer"

    with storage.get(file_id) as stored:
        storage.replace(stored, stored)
    assert read_back(storage, file_id) == b"newer"
    assert storage.info(file_id).filename == "new.pdf"

    try:
        storage.replace(ABSENT_ID, b"data")
    except FileNotFound:
        pass
    else:
        raise AssertionError("replace() of an absent id did not raise FileNotFound")
    assert ctx.ids() == {file_id}


@check()
def check_copy_from_and_to_another_storage(ctx: LintContext) -> None:
    """replace(f, f) with StoredFiles of another storage copies them, in both directions."""
    storage, other = ctx.storage, MemoryFileStorage()
    originals = {
        other.create(b"first", "one.txt"): b"first",
        other.create(PDF_HEAD + b"second", "two.pdf"): PDF_HEAD + b"second",
        other.create(b"", "empty"): b"",
    }
    for fid in other.list():
        with other.get(fid) as f:
            assert storage.replace(f, f) == fid
    assert ctx.ids() == set(originals)
    for fid, data in originals.items():
        copied, source = storage.info(fid), other.info(fid)
        assert read_back(storage, fid) == data
        assert (copied.filename, copied.content_type, copied.checksum) == (
            source.filename,
            source.content_type,
            source.checksum,
        )
    back = MemoryFileStorage()
    for fid in originals:
        with storage.get(fid) as f:
            back.replace(f, f)
    assert {fid: read_back(back, fid) for fid in back.list()} == originals


@check()
def check_write_copy_keeps_metadata(ctx: LintContext) -> None:
    """write_copy() keeps the id, filename, type and last_modified of the source."""
    source = MemoryFileStorage()
    file_id = source.create(b"copied bytes", filename="r\u00e9sum\u00e9.txt")
    with source.get(file_id) as original:
        original.info.last_modified = original.last_modified.replace(year=2001)
        written = ctx.storage.write_copy(original)
    assert written.checksum == sha256(b"copied bytes")
    with ctx.storage.get(file_id) as copy:
        assert copy.read() == b"copied bytes"
        assert (copy.filename, copy.content_type) == ("r\u00e9sum\u00e9.txt", "text/plain")
        assert copy.last_modified.year == 2001, "write_copy() did not keep last_modified"
        assert copy.checksum == written.checksum


@check()
def check_store_returns_metadata(ctx: LintContext) -> None:
    """store() returns the new file's metadata, as get() gives it."""
    info = ctx.storage.store(b"stored once", filename="once.txt")
    assert info.checksum == sha256(b"stored once") and info.content_length == 11
    with ctx.storage.get(info.file_id) as stored:
        assert stored.read() == b"stored once"
        assert (stored.filename, stored.content_type) == (info.filename, info.content_type)
        assert (stored.checksum, stored.last_modified) == (info.checksum, info.last_modified)


# -- delete, exists, iter_ids -----------------------------------------------------------------
@check()
def check_delete_and_exists(ctx: LintContext) -> None:
    """delete() is idempotent and takes a StoredFile; a deleted file raises FileNotFound (a
    FileNotFoundError naming it); exists() follows."""
    storage = ctx.storage
    file_id = storage.create(b"doomed")
    kept = storage.create(b"kept")
    assert storage.exists(file_id) and not storage.exists(ABSENT_ID)
    storage.delete(file_id)
    storage.delete(file_id)
    assert not storage.exists(file_id), "exists() after delete()"
    try:
        storage.get(file_id)
    except FileNotFound as exc:
        assert isinstance(exc, FileNotFoundError) and isinstance(exc, IOError)
        assert file_id in str(exc), f"FileNotFound does not name the file: {exc}"
    else:
        raise AssertionError("get() of a deleted file did not raise FileNotFound")
    with storage.get(kept) as stored:
        assert storage.exists(stored)
    storage.delete(stored)
    assert not storage.exists(kept) and ctx.ids() == set()


@check()
def check_iter_ids(ctx: LintContext) -> None:
    """list() and iter_ids() give exactly the stored ids, each once."""
    storage = ctx.storage
    ids = {storage.create(f"file {n}".encode()) for n in range(12)}
    assert len(ids) == 12, "create() gave the same id twice"
    assert ctx.ids() == ids
    iterated = list(storage.iter_ids())
    assert set(iterated) - ctx.before == ids and len(iterated) == len(set(iterated))
    deleted = sorted(ids)[:5]
    for file_id in deleted:
        storage.delete(file_id)
    assert ctx.ids() == ids - set(deleted)


MALFORMED_IDS: dict[str, object] = {
    "parent": "../x",
    "parent of a valid id": f"../{ABSENT_ID}",
    "valid then parent": f"{ABSENT_ID}/../../x",
    "absolute": "/etc/passwd",
    "NUL": f"{ABSENT_ID}\x00",
    "huge": "a" * 10_000,
    "wrong format": "not-a-uuid",
    "uppercase": ABSENT_ID.upper(),
    "newline": f"{ABSENT_ID}\n",
    "empty": "",
    "not a string": 12345,
    # readable keys (sa_depot.io.keys): '/' separates parts, none of which may climb or hide
    "parent inside a key": f"acme/../{ABSENT_ID}",
    "dot part": f"acme/./{ABSENT_ID}",
    "empty part": f"acme//{ABSENT_ID}",
    "trailing slash": f"{ABSENT_ID}/",
    "hidden part": f".sa-depot-uploads/{ABSENT_ID}",
    "backslash": f"acme\\..\\{ABSENT_ID}",
    "bidi control": f"acme/\u202e{ABSENT_ID}",
    "key without a UUID": "acme/2026/11/report.pdf",
    "part too long": "a" * 300 + f"/{ABSENT_ID}",
    "key too long": "abcdefgh/" * 50 + ABSENT_ID,
}
OPERATIONS: dict[str, Callable[[FileStorage, Any], object]] = {
    "get": lambda storage, fid: storage.get(fid),
    "delete": lambda storage, fid: storage.delete(fid),
    "exists": lambda storage, fid: storage.exists(fid),
    "replace": lambda storage, fid: storage.replace(fid, b"data"),
    "info": lambda storage, fid: storage.info(fid),
}


@check()
def check_error_classes(ctx: LintContext) -> None:
    """Malformed ids raise InvalidFileId (a ValueError) from every operation, touch nothing
    and are not echoed in full."""
    (ctx.workdir / "x").write_bytes(b"outside")
    for id_name, bad_id in MALFORMED_IDS.items():
        for op_name, operation in OPERATIONS.items():
            try:
                operation(ctx.storage, bad_id)
            except InvalidFileId as exc:
                assert isinstance(exc, ValueError)
                assert "invalid file id" in str(exc) and len(str(exc)) < 400
            else:
                raise AssertionError(f"{op_name}({id_name} id) did not raise InvalidFileId")
    assert (ctx.workdir / "x").read_bytes() == b"outside"
    assert ctx.ids() == set()


# -- readable keys -----------------------------------------------------------------------------
DATED_KEY = "{tenant}/{yyyy}/{mm}/{id}{ext}"


@check()
def check_nested_keys(ctx: LintContext) -> None:
    """Files named by a key template ('acme/2026/11/<uuid>.pdf') are created, read, listed,
    replaced and deleted like UUID-named ones, next to them and next to each other."""
    storage = ctx.storage
    plain = storage.create(b"plain")
    data = payload(storage, "keyed")
    file_id = storage.create(data, "Résumé final.PDF", key=DATED_KEY, key_values={"tenant": "acme"})
    now = datetime.now(timezone.utc)
    parts = file_id.split("/")
    assert len(parts) == 4 and parts[0] == "acme", f"{DATED_KEY!r} made {file_id!r}"
    assert parts[1] in (str(now.year), str(now.year - 1)) and parts[3].endswith(".pdf"), file_id
    assert read_back(storage, file_id) == data
    with storage.get(file_id) as stored:
        assert stored.file_id == file_id and stored.filename == "Résumé final.PDF"
        assert stored.checksum == sha256(data)
    assert storage.exists(file_id) and storage.info(file_id).content_length == len(data)
    assert ctx.ids() == {plain, file_id}, f"list() gave {sorted(ctx.ids())}"
    assert storage.replace(file_id, b"new content") == file_id
    assert read_back(storage, file_id) == b"new content"
    # two keys in one directory: deleting one leaves the other
    sibling = storage.create(b"sibling", key="acme/{yyyy}/{mm}/{id}")
    assert sibling.rpartition("/")[0] == file_id.rpartition("/")[0], (sibling, file_id)
    assert ctx.ids() == {plain, file_id, sibling}, f"list() gave {sorted(ctx.ids())}"
    storage.delete(sibling)
    assert not storage.exists(sibling) and storage.exists(file_id)
    storage.delete(file_id)
    assert not storage.exists(file_id) and ctx.ids() == {plain}
    try:
        storage.get(file_id)
    except FileNotFound as exc:
        assert file_id in str(exc), f"FileNotFound does not name the file: {exc}"
    else:
        raise AssertionError("get() of a deleted keyed file did not raise FileNotFound")
    assert read_back(storage, plain) == b"plain"
    storage.delete(plain)


@check()
def check_key_traversal_refused(ctx: LintContext) -> None:
    """Malformed templates raise InvalidKey; values and filenames that try to climb, hide or
    add parts stay inside one part of the key; nothing is written outside the storage."""
    storage = ctx.storage
    (ctx.workdir / "x").write_bytes(b"outside")
    for template in ("../{id}", "/{id}", "{tenant}//{id}", "./{id}", "{a.b}/{id}", "{0}/{id}"):
        try:
            storage.create(b"x", key=template, key_values={"tenant": "t"})
        except InvalidKey as exc:
            assert isinstance(exc, ValueError) and template in str(exc)
        else:
            raise AssertionError(f"key template {template!r} was accepted")
    safe_template = KeyTemplate("{tenant}/{filename}")
    refused: list[str] = []
    for value in ("../..", "../../x", "/etc", "a\\..\\b", ".", "\u202eevil", "a\x00b", "x/../.."):
        try:
            file_id = storage.create(
                b"x", "../../../etc/passwd", key=safe_template, key_values={"tenant": value}
            )
        except InvalidKey:
            refused.append(value)  # nothing left of the value: refused, nothing stored
            continue
        parts = file_id.split("/")
        assert len(parts) == 3 and parts[2] == "passwd", f"{value!r} made {file_id!r}"
        assert not any(p in (".", "..") or p.startswith(".") for p in parts), file_id
        assert "\u202e" not in file_id and "\x00" not in file_id and "\\" not in file_id
        assert read_back(storage, file_id) == b"x"
        storage.delete(file_id)
    assert refused == ["."], f"values refused instead of made safe: {refused}"
    try:
        storage.create(b"x", key="{tenant}/{id}")
    except InvalidKey as exc:
        assert "tenant" in str(exc), f"InvalidKey does not name the missing value: {exc}"
    else:
        raise AssertionError("a template whose value is missing was accepted")
    with storage.get(storage.create(b"source")) as stored:
        try:
            storage.write_copy(stored, file_id=f"../{ABSENT_ID}")
        except InvalidFileId:
            pass
        else:
            raise AssertionError("write_copy() to a climbing key was accepted")
        storage.delete(stored.file_id)
    assert (ctx.workdir / "x").read_bytes() == b"outside"
    assert ctx.ids() == set()


@check()
def check_keys_unique(ctx: LintContext) -> None:
    """The same template, values and filename never name two files alike: no upload
    overwrites another, with or without {id} in the template."""
    storage = ctx.storage
    made: dict[str, bytes] = {}
    for template in (DATED_KEY, "{tenant}/{filename}"):
        for n in range(8):
            data = f"upload {template} {n}".encode()
            file_id = storage.create(
                data, "report.pdf", key=template, key_values={"tenant": "acme"}
            )
            assert file_id not in made, f"{template!r} named two files {file_id!r}"
            made[file_id] = data
    assert ctx.ids() == set(made)
    for file_id, data in made.items():
        assert read_back(storage, file_id) == data, f"{file_id} was overwritten"
        storage.delete(file_id)


# -- concurrency and atomic visibility --------------------------------------------------------
@check()
def check_concurrent_creates_from_threads(ctx: LintContext) -> None:
    """Threads creating files at once get distinct ids and intact files."""
    results: list[list[tuple[str, bytes]]] = [[] for _ in range(6)]
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            for n in range(15):
                data = f"thread {worker} file {n} ".encode() * (n * 50 + 1)
                results[worker].append((ctx.storage.create(data, f"t{worker}-{n}.txt"), data))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    _run_threads([threading.Thread(target=run, args=(w,)) for w in range(6)], 120)
    assert not errors, f"creates failed: {errors[0]!r}"
    created = [pair for made in results for pair in made]
    assert len(created) == 90 and ctx.ids() == {fid for fid, _ in created}
    for file_id, data in created:
        assert read_back(ctx.storage, file_id) == data


@check()
def check_atomic_visibility(ctx: LintContext) -> None:
    """Readers of a file being replaced never see a partial file or a mix of two versions:
    every read matches the checksum it came with (a clean StorageError is allowed)."""
    storage = ctx.storage
    versions = [bytes([n]) * (storage.chunk_size + n * 1000) for n in range(1, 6)]
    checksums = {sha256(v) for v in versions}
    file_id = storage.create(versions[0], "v.bin")
    problems: list[str] = []
    stop = threading.Event()

    def replace_repeatedly() -> None:
        try:
            for round_ in range(10):
                for n, data in enumerate(versions):
                    storage.replace(file_id, data, f"v{n}-{round_}.bin")
        except BaseException as exc:  # noqa: BLE001 - reported below
            problems.append(f"replace failed: {exc!r}")
        finally:
            stop.set()

    def read_repeatedly() -> None:
        reads = 0
        while not stop.is_set() or reads < 5:
            reads += 1
            try:
                with storage.get(file_id) as stored:
                    data = stored.read()
                    if sha256(data) != stored.checksum or stored.checksum not in checksums:
                        problems.append(f"read {len(data)} bytes not matching {stored.checksum}")
                    if stored.content_length != len(data):
                        problems.append(f"length {stored.content_length} but read {len(data)}")
            except StorageError:
                pass  # the version being read was replaced: a clean failure, no mix
            except BaseException as exc:  # noqa: BLE001 - reported below
                problems.append(f"read failed: {exc!r}")
                return

    _run_threads(
        [threading.Thread(target=replace_repeatedly)]
        + [threading.Thread(target=read_repeatedly) for _ in range(3)],
        180,
    )
    assert problems == [], problems[:5]
    assert read_back(storage, file_id) == versions[-1]
    assert ctx.ids() == {file_id}


@check(needs=("config",))
def check_concurrent_creates_from_processes(ctx: LintContext) -> None:
    """Processes creating files in the same storage at once get distinct ids, intact files."""
    assert ctx.config is not None
    context = multiprocessing.get_context("spawn")
    count, per_worker = 3, 10
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=create_files, args=(ctx.config, w, per_worker, barrier, results))
        for w in range(count)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=120) for _ in processes]
    except queue.Empty:
        raise AssertionError("a worker process reported nothing within 120 s") from None
    finally:
        for process in processes:
            process.join(30)
    errors = [error for _, _, error in reports if error]
    assert errors == [], errors[0] if errors else ""
    created = [pair for _, made, _ in reports for pair in made]
    assert len(created) == count * per_worker and ctx.ids() == {fid for fid, _ in created}
    for file_id, checksum in created:
        with ctx.storage.get(file_id) as stored:
            assert sha256(stored.read()) == checksum == stored.checksum


@check()
def check_failed_writes_leave_nothing(ctx: LintContext) -> None:
    """An input failing half-way leaves nothing new (not even a temporary artefact) and a
    failed replace keeps the previous version intact."""
    storage = ctx.storage
    kept = storage.create(b"previous version", "previous.txt")
    info, raw = storage.info(kept), ctx.raw()
    for attempt in ("create", "replace"):
        try:
            stream = FailingStream(storage.chunk_size * 2 + 10)
            if attempt == "create":
                storage.create(stream, "partial.bin")
            else:
                storage.replace(kept, stream, "next.bin")
        except InputBroke:
            pass
        else:
            raise AssertionError(f"{attempt}() swallowed the input's exception")
        assert ctx.ids() == {kept}, f"a failed {attempt} left a file"
        assert read_back(storage, kept) == b"previous version"
        assert storage.info(kept) == info, f"a failed {attempt} changed the metadata"
        assert ctx.raw() == raw, f"a failed {attempt} left {sorted(ctx.raw() - raw)}"


# -- memory -----------------------------------------------------------------------------------
@check(slow=True)
def check_bounded_memory(ctx: LintContext) -> None:
    """Creating and reading a large file (256 MiB) keeps memory bounded: measured as the
    peak RSS of a fresh process given ``config``, else as Python's allocations (tracemalloc)."""
    if ctx.config is not None:
        report = _measure_in_child(ctx.config, ctx.large_file_size)
        growth = report["after_read"] - report["baseline"]
        ctx.measured.update(
            create_growth_mib=round((report["after_create"] - report["baseline"]) / MiB, 1),
            peak_growth_mib=round(growth / MiB, 1),
            method="peak RSS of a child process",
        )
    else:
        report, growth = _measure_in_process(ctx.storage, ctx.large_file_size)
        ctx.measured.update(peak_growth_mib=round(growth / MiB, 1), method="tracemalloc")
    assert report["stored_length"] == report["read_length"] == ctx.large_file_size
    assert report["generated_checksum"] == report["stored_checksum"] == report["read_checksum"]
    assert growth < ctx.memory_bound, (
        f"memory grew by {growth / MiB:.1f} MiB for a {ctx.large_file_size // MiB} MiB file "
        f"(bound: {ctx.memory_bound // MiB} MiB)"
    )


def _measure_in_child(config: dict[str, str], size: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "sa_depot.testing.workers", json.dumps(config), str(size)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, f"the measuring process failed:\n{completed.stderr}"
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def _measure_in_process(storage: FileStorage, size: int) -> tuple[dict[str, Any], int]:
    tracemalloc.start()
    try:
        stream = GeneratedStream(size)
        tracemalloc.reset_peak()
        file_id = storage.create(stream, filename="big.bin")
        digest, length = hashlib.sha256(), 0
        with storage.get(file_id) as stored:
            stored_checksum, stored_length = stored.checksum, stored.content_length
            for chunk in stored.chunks():
                digest.update(chunk)
                length += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    storage.delete(file_id)
    report = {
        "generated_checksum": stream.sha256.hexdigest(),
        "stored_checksum": stored_checksum,
        "read_checksum": digest.hexdigest(),
        "stored_length": stored_length,
        "read_length": length,
    }
    return report, peak


def _run_threads(threads: list[threading.Thread], timeout: float) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), (
        f"threads still running after {timeout}s"
    )


def iter_checks(names: Iterator[str] | None = None) -> list[Check]:
    """The checks named (all by default), in definition order."""
    if names is None:
        return list(CHECKS.values())
    chosen = list(names)
    unknown = [name for name in chosen if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    return [CHECKS[name] for name in chosen]
