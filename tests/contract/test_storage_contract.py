"""The storage contract: every storage of tests/storages.py must pass every test here.

The contract is stated in :mod:`sa_depot.io.interfaces`. A backend that needs a capability
(processes sharing the storage, bounded memory) gets the tests that use it through the
``backend_needs`` marker; see tests/storages.py.
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
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage as WerkzeugFileStorage

from sa_depot.exceptions import FileNotFound, InvalidFileId, UnsupportedContent
from sa_depot.io.interfaces import FileStorage, StoredFile
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.io.utils import FileIntent
from tests.contract import workers
from tests.storages import StorageBackend
from tests.streams import FailingStream, InputBroke

REPO_ROOT = Path(__file__).resolve().parents[2]
PDF_HEAD = b"%PDF-1.4\n"


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


def raw_snapshot(backend: StorageBackend, storage: FileStorage) -> set[str]:
    return backend.raw_contents(storage) if backend.raw_contents else set()


# -- every kind of input ----------------------------------------------------------------------
class ShortReadStream(io.RawIOBase):
    """A non-seekable stream returning at most 7 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 7))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _pipe(data: bytes, cleanups: list[Callable[[], None]]) -> Any:
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(data)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    cleanups.append(reader.close)
    cleanups.append(lambda: feeder.join(10))
    return reader


def _real_file(data: bytes, tmp_path: Path, cleanups: list[Callable[[], None]]) -> Any:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    fileobj = path.open("rb")
    cleanups.append(fileobj.close)
    return fileobj


def _stored_file(
    data: bytes, other: MemoryFileStorage, cleanups: list[Callable[[], None]]
) -> StoredFile:
    stored = other.get(other.create(data, "source.pdf", "application/x-from-source"))
    cleanups.append(stored.close)
    return stored


# name -> (build(data, tmp_path, other storage, cleanups), expected filename, expected type)
INPUT_KINDS: dict[str, tuple[Callable[..., Any], str | None, str]] = {
    "bytes": (lambda d, t, o, c: bytes(d), "unnamed", "application/pdf"),
    "bytearray": (lambda d, t, o, c: bytearray(d), "unnamed", "application/pdf"),
    "memoryview": (lambda d, t, o, c: memoryview(d), "unnamed", "application/pdf"),
    "seekable-file": (lambda d, t, o, c: _real_file(d, t, c), "report.pdf", "application/pdf"),
    "bytesio": (lambda d, t, o, c: io.BytesIO(d), "unnamed", "application/pdf"),
    "pipe": (lambda d, t, o, c: _pipe(d, c), "unnamed", "application/pdf"),
    "short-reads": (lambda d, t, o, c: ShortReadStream(d), "unnamed", "application/pdf"),
    "file-intent": (
        lambda d, t, o, c: FileIntent(io.BytesIO(d), "given.bin", "application/x-given"),
        "given.bin",
        "application/x-given",
    ),
    "cgi-field-storage": (
        lambda d, t, o, c: SimpleNamespace(
            file=io.BytesIO(d), filename="cgi.pdf", type="application/x-cgi"
        ),
        "cgi.pdf",
        "application/x-cgi",
    ),
    "werkzeug": (
        lambda d, t, o, c: WerkzeugFileStorage(
            stream=io.BytesIO(d), filename="werkzeug.pdf", content_type="application/x-wz"
        ),
        "werkzeug.pdf",
        "application/x-wz",
    ),
    "starlette-upload": (
        lambda d, t, o, c: SimpleNamespace(
            file=io.BytesIO(d), filename="upload.pdf", content_type="application/x-up"
        ),
        "upload.pdf",
        "application/x-up",
    ),
    "stored-file": (
        lambda d, t, o, c: _stored_file(d, o, c),
        "source.pdf",
        "application/x-from-source",
    ),
}


@pytest.fixture
def cleanups() -> Iterator[list[Callable[[], None]]]:
    pending: list[Callable[[], None]] = []
    yield pending
    for cleanup in reversed(pending):
        cleanup()


@pytest.mark.parametrize("kind", list(INPUT_KINDS))
def test_create_accepts_every_input_kind(
    storage: FileStorage,
    other_storage: MemoryFileStorage,
    tmp_path: Path,
    cleanups: list[Callable[[], None]],
    kind: str,
) -> None:
    build, filename, content_type = INPUT_KINDS[kind]
    data = payload(storage, kind)
    file_id = storage.create(build(data, tmp_path, other_storage, cleanups))

    with storage.get(file_id) as stored:
        assert stored.read() == data
        assert stored.filename == filename
        assert stored.content_type == content_type
        assert stored.content_length == len(data)
        assert stored.checksum == sha256(data)


def test_a_str_is_refused_and_nothing_is_stored(storage: FileStorage) -> None:
    with pytest.raises(UnsupportedContent, match="bytes") as raised:
        storage.create("text is not bytes")
    assert isinstance(raised.value, TypeError)
    assert storage.list() == []


# -- sizes, names and metadata ----------------------------------------------------------------
def test_empty_file(storage: FileStorage) -> None:
    file_id = storage.create(b"", "empty.txt")

    with storage.get(file_id) as stored:
        assert stored.read() == b""
        assert stored.content_length == 0
        assert stored.checksum == sha256(b"")
        assert stored.filename == "empty.txt"


@pytest.mark.parametrize("chunks", [0.5, 1, 2, 3.25])
def test_multi_chunk_files_read_back_identical(storage: FileStorage, chunks: float) -> None:
    size = int(storage.chunk_size * chunks)
    data = os.urandom(size)
    file_id = storage.create(io.BytesIO(data), "random.bin")

    with storage.get(file_id) as stored:
        parts = list(stored.chunks(storage.chunk_size))
        assert all(len(part) <= storage.chunk_size for part in parts)
        assert b"".join(parts) == data
        assert stored.content_length == size
        assert stored.checksum == sha256(data)
    assert read_back(storage, file_id) == data


@pytest.mark.parametrize(
    "filename", ["résumé.pdf", "履歴書 2024.pdf", "📎 attachment.bin", "quote\"and'apostrophe.txt"]
)
def test_non_ascii_filenames_round_trip(storage: FileStorage, filename: str) -> None:
    file_id = storage.create(b"content", filename)

    assert storage.info(file_id).filename == filename
    with storage.get(file_id) as stored:
        assert stored.filename == stored.name == filename


def test_metadata(storage: FileStorage) -> None:
    data = PDF_HEAD + b"body" * 100
    before = datetime.now(timezone.utc).replace(microsecond=0)
    file_id = storage.create(data, "report.pdf")
    after = datetime.now(timezone.utc)

    with storage.get(file_id) as stored:
        assert stored.file_id == file_id
        assert stored.filename == "report.pdf"
        assert stored.content_type == "application/pdf"
        assert stored.content_length == len(data)
        assert stored.checksum == sha256(data)
        assert stored.last_modified.tzinfo is not None
        assert before <= stored.last_modified <= after
        info = stored.info
    assert storage.info(file_id) == info


def test_public_url_is_none_or_a_url_and_takes_an_id_or_a_stored_file(
    storage: FileStorage,
) -> None:
    file_id = storage.create(b"public?", "p.txt")
    url = storage.public_url(file_id)
    assert url is None or url.startswith(("https://", "http://"))
    with storage.get(file_id) as stored:
        assert (storage.public_url(stored) is None) is (url is None)
        assert (stored.public_url is None) is (url is None)


def test_explicit_content_type_wins_over_detection(storage: FileStorage) -> None:
    file_id = storage.create(PDF_HEAD + b"x", "report.pdf", content_type="application/x-mine")
    assert storage.info(file_id).content_type == "application/x-mine"


def test_unknown_content_without_filename_is_octet_stream(storage: FileStorage) -> None:
    file_id = storage.create(hashlib.sha256(b"x").digest() * 16)  # libmagic: no idea
    assert storage.info(file_id).content_type == "application/octet-stream"


# -- reading ----------------------------------------------------------------------------------
def test_seek_tell_and_partial_reads(storage: FileStorage) -> None:
    data = bytes(range(256)) * 4
    file_id = storage.create(data)

    with storage.get(file_id) as stored:
        assert stored.read(10) == data[:10]
        assert stored.read(0) == b""
        if not stored.seekable():
            with pytest.raises(OSError):
                stored.seek(0)
            assert stored.read() == data[10:]
            return
        assert stored.tell() == 10
        assert stored.seek(100) == 100
        assert stored.read(5) == data[100:105]
        assert stored.tell() == 105
        assert stored.seek(-3, io.SEEK_END) == len(data) - 3
        assert stored.read() == data[-3:]
        assert stored.read(10) == b""
        stored.seek(-10, io.SEEK_CUR)
        assert stored.read(4) == data[-10:-6]
        stored.seek(0)
        assert stored.read() == data


def test_stored_file_is_a_context_manager_that_closes(storage: FileStorage) -> None:
    file_id = storage.create(b"data")
    with storage.get(file_id) as stored:
        assert stored.readable()
    assert stored.closed
    with pytest.raises(ValueError):
        stored.read()


# -- replace ----------------------------------------------------------------------------------
def test_replace_keeps_the_id_with_new_content_and_metadata(storage: FileStorage) -> None:
    file_id = storage.create(b"old plain text", "old.txt")
    old = storage.info(file_id)
    new_data = PDF_HEAD + b"new content"

    assert storage.replace(file_id, new_data, "new.pdf") == file_id

    with storage.get(file_id) as stored:
        assert stored.read() == new_data
        assert stored.filename == "new.pdf"
        assert stored.content_type == "application/pdf"
        assert stored.content_length == len(new_data)
        assert stored.checksum == sha256(new_data)
        assert stored.last_modified >= old.last_modified
    assert storage.list() == [file_id]


def test_replace_keeps_the_filename_when_the_content_has_none(storage: FileStorage) -> None:
    file_id = storage.create(b"old", "kept.txt")
    storage.replace(file_id, b"new")
    assert storage.info(file_id).filename == "kept.txt"
    assert read_back(storage, file_id) == b"new"


def test_replace_of_an_absent_id_raises_file_not_found(storage: FileStorage) -> None:
    absent = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    with pytest.raises(FileNotFound):
        storage.replace(absent, b"data")
    assert storage.list() == []


def test_replace_with_a_stored_file_of_another_storage_copies_it(
    storage: FileStorage, other_storage: MemoryFileStorage
) -> None:
    """depot's backup recipe, in both directions."""
    originals = {
        other_storage.create(b"first", "one.txt"): b"first",
        other_storage.create(PDF_HEAD + b"second", "two.pdf"): PDF_HEAD + b"second",
        other_storage.create(b"", "empty"): b"",
    }
    for fid in other_storage.list():
        with other_storage.get(fid) as f:
            assert storage.replace(f, f) == fid

    assert set(storage.list()) == set(originals)
    for fid, data in originals.items():
        copied, source = storage.info(fid), other_storage.info(fid)
        assert read_back(storage, fid) == data
        assert (copied.filename, copied.content_type, copied.checksum) == (
            source.filename,
            source.content_type,
            source.checksum,
        )

    back = MemoryFileStorage()
    for fid in storage.list():
        with storage.get(fid) as f:
            back.replace(f, f)
    assert {fid: read_back(back, fid) for fid in back.list()} == originals


def test_replace_a_file_with_itself(storage: FileStorage) -> None:
    file_id = storage.create(b"same content", "same.txt")
    with storage.get(file_id) as stored:
        storage.replace(stored, stored)
    assert read_back(storage, file_id) == b"same content"
    assert storage.info(file_id).filename == "same.txt"


# -- delete, exists, list ---------------------------------------------------------------------
def test_delete_is_idempotent_and_the_file_is_gone(storage: FileStorage) -> None:
    file_id = storage.create(b"doomed")
    kept = storage.create(b"kept")

    storage.delete(file_id)
    storage.delete(file_id)

    assert not storage.exists(file_id)
    with pytest.raises(FileNotFound) as raised:
        storage.get(file_id)
    assert isinstance(raised.value, FileNotFoundError)
    assert isinstance(raised.value, IOError)
    assert file_id in str(raised.value)
    with pytest.raises(FileNotFound):
        storage.replace(file_id, b"back?")
    assert storage.list() == [kept]


def test_delete_accepts_a_stored_file(storage: FileStorage) -> None:
    file_id = storage.create(b"data")
    with storage.get(file_id) as stored:
        pass
    storage.delete(stored)
    assert not storage.exists(file_id)


def test_exists(storage: FileStorage) -> None:
    file_id = storage.create(b"data")
    assert storage.exists(file_id)
    with storage.get(file_id) as stored:
        assert storage.exists(stored)
    assert not storage.exists("1b4e28ba-2fa1-41d2-883f-0016d3cca427")


def test_list_returns_exactly_the_stored_ids(storage: FileStorage) -> None:
    assert storage.list() == []
    ids = {storage.create(f"file {n}".encode()) for n in range(12)}
    assert len(ids) == 12
    assert sorted(storage.list()) == sorted(ids)
    assert sorted(storage.iter_ids()) == sorted(ids)

    deleted = sorted(ids)[:5]
    for file_id in deleted:
        storage.delete(file_id)
    assert sorted(storage.list()) == sorted(ids - set(deleted))


MALFORMED_IDS = {
    "parent": "../x",
    "parent-of-valid": "../1b4e28ba-2fa1-41d2-883f-0016d3cca427",
    "valid-then-parent": "1b4e28ba-2fa1-41d2-883f-0016d3cca427/../../x",
    "absolute": "/etc/passwd",
    "nul": "1b4e28ba-2fa1-41d2-883f-0016d3cca427\x00",
    "huge": "a" * 10_000,
    "wrong-format": "not-a-uuid",
    "uppercase": "1B4E28BA-2FA1-41D2-883F-0016D3CCA427",
    "newline": "1b4e28ba-2fa1-41d2-883f-0016d3cca427\n",
    "empty": "",
    "not-a-string": 12345,
}
OPERATIONS: dict[str, Callable[[FileStorage, Any], object]] = {
    "get": lambda storage, fid: storage.get(fid),
    "delete": lambda storage, fid: storage.delete(fid),
    "exists": lambda storage, fid: storage.exists(fid),
    "replace": lambda storage, fid: storage.replace(fid, b"data"),
    "info": lambda storage, fid: storage.info(fid),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("bad_id", list(MALFORMED_IDS))
def test_malformed_ids_raise_invalid_file_id(
    storage: FileStorage, tmp_path: Path, operation: str, bad_id: str
) -> None:
    (tmp_path / "x").write_bytes(b"outside")
    with pytest.raises(InvalidFileId) as raised:
        OPERATIONS[operation](storage, MALFORMED_IDS[bad_id])
    assert isinstance(raised.value, ValueError)
    assert "invalid file id" in str(raised.value)
    assert len(str(raised.value)) < 400  # a 10,000 character id is not echoed in full
    assert (tmp_path / "x").read_bytes() == b"outside"
    assert storage.list() == []


# -- concurrency ------------------------------------------------------------------------------
def test_concurrent_creates_from_threads(storage: FileStorage) -> None:
    def create_some(worker: int) -> list[tuple[str, bytes]]:
        made = []
        for n in range(15):
            data = f"thread {worker} file {n} ".encode() * (n * 50 + 1)
            made.append((storage.create(data, f"t{worker}-{n}.txt"), data))
        return made

    results: list[list[tuple[str, bytes]]] = [[] for _ in range(6)]

    def run(worker: int) -> None:
        results[worker] = create_some(worker)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    created = [pair for made in results for pair in made]
    assert len(created) == 90
    assert sorted(storage.list()) == sorted(fid for fid, _ in created)
    for file_id, data in created:
        assert read_back(storage, file_id) == data


def test_readers_never_see_a_mix_of_two_versions(storage: FileStorage) -> None:
    """Concurrent replaces of one file: every read matches the checksum it came with."""
    versions = [bytes([n]) * (storage.chunk_size + n * 1000) for n in range(1, 6)]
    checksums = {sha256(v) for v in versions}
    file_id = storage.create(versions[0], "v.bin")
    errors: list[str] = []
    stop = threading.Event()

    def replace_repeatedly() -> None:
        for round_ in range(10):
            for n, data in enumerate(versions):
                storage.replace(file_id, data, f"v{n}-{round_}.bin")
        stop.set()

    def read_repeatedly() -> None:
        reads = 0
        while not stop.is_set() or reads < 5:
            with storage.get(file_id) as stored:
                data = stored.read()
                if sha256(data) != stored.checksum or stored.checksum not in checksums:
                    errors.append(f"read {len(data)} bytes not matching {stored.checksum}")
                if stored.content_length != len(data):
                    errors.append(f"length {stored.content_length} but read {len(data)}")
            reads += 1

    threads = [threading.Thread(target=replace_repeatedly)]
    threads += [threading.Thread(target=read_repeatedly) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert read_back(storage, file_id) == versions[-1]
    assert storage.list() == [file_id]


@pytest.mark.backend_needs("shared_between_processes")
def test_concurrent_creates_from_processes(backend: StorageBackend, storage: FileStorage) -> None:
    assert backend.child_config is not None
    config = backend.child_config(storage)
    context = multiprocessing.get_context("spawn")
    workers_count, per_worker = 3, 10
    barrier = context.Barrier(workers_count)
    results = context.Queue()
    processes = [
        context.Process(target=workers.create_files, args=(config, w, per_worker, barrier, results))
        for w in range(workers_count)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=120) for _ in processes]
    except queue.Empty:
        pytest.fail("a worker process reported nothing within 120 s")
    finally:
        for process in processes:
            process.join(30)
    assert [error for _, _, error in reports if error] == []

    created = [pair for _, made, _ in reports for pair in made]
    assert len(created) == workers_count * per_worker
    assert sorted(storage.list()) == sorted(fid for fid, _ in created)
    for file_id, checksum in created:
        with storage.get(file_id) as stored:
            assert sha256(stored.read()) == checksum == stored.checksum
        storage.delete(file_id)
    assert storage.list() == []


# -- failures ---------------------------------------------------------------------------------
def test_an_input_failing_half_way_leaves_nothing(
    backend: StorageBackend, storage: FileStorage
) -> None:
    kept = storage.create(b"already there")
    listed, raw = storage.list(), raw_snapshot(backend, storage)

    with pytest.raises(InputBroke):
        storage.create(FailingStream(storage.chunk_size * 2 + 10), "partial.bin")

    assert storage.list() == listed == [kept]
    assert raw_snapshot(backend, storage) == raw


def test_a_replace_failing_half_way_keeps_the_previous_version(
    backend: StorageBackend, storage: FileStorage
) -> None:
    file_id = storage.create(b"previous version", "previous.txt")
    info, raw = storage.info(file_id), raw_snapshot(backend, storage)

    with pytest.raises(InputBroke):
        storage.replace(file_id, FailingStream(storage.chunk_size * 2 + 10), "next.bin")

    assert read_back(storage, file_id) == b"previous version"
    assert storage.info(file_id) == info
    assert raw_snapshot(backend, storage) == raw


# -- memory -----------------------------------------------------------------------------------
BIG_FILE_SIZE = 256 * 1024 * 1024
#: Allowed growth of peak RSS over the baseline: a few chunks plus allocator slack.
MEMORY_BOUND = 40 * 1024 * 1024


@pytest.mark.backend_needs("measurable_memory")
def test_creating_and_reading_256_mib_keeps_memory_bounded(
    backend: StorageBackend, storage: FileStorage
) -> None:
    """Stream a generated, non-seekable 256 MiB file in and out in a fresh process."""
    assert backend.child_config is not None
    config = backend.child_config(storage)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "tests.contract.workers", json.dumps(config), str(BIG_FILE_SIZE)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["stored_length"] == report["read_length"] == BIG_FILE_SIZE
    assert report["generated_checksum"] == report["stored_checksum"] == report["read_checksum"]
    growth = report["after_read"] - report["baseline"]
    assert growth < MEMORY_BOUND, (
        f"peak RSS grew by {growth / 2**20:.1f} MiB for a 256 MiB file "
        f"(after create: {(report['after_create'] - report['baseline']) / 2**20:.1f} MiB)"
    )
    assert storage.list() == []


def test_write_copy_keeps_id_and_every_metadata_field(storage: FileStorage) -> None:
    source = MemoryFileStorage()
    file_id = source.create(b"copied bytes", filename="r\u00e9sum\u00e9.txt")
    with source.get(file_id) as original:
        original.info.last_modified = original.last_modified.replace(year=2001)
        written = storage.write_copy(original)
    assert written.checksum == hashlib.sha256(b"copied bytes").hexdigest()
    with storage.get(file_id) as copy:
        assert copy.read() == b"copied bytes"
        assert copy.filename == "r\u00e9sum\u00e9.txt"
        assert copy.content_type == "text/plain"
        assert copy.last_modified.year == 2001
        assert copy.checksum == written.checksum


def test_store_returns_the_metadata_of_the_new_file(storage: FileStorage) -> None:
    info = storage.store(b"stored once", filename="once.txt")
    assert info.checksum == hashlib.sha256(b"stored once").hexdigest()
    assert info.content_length == len(b"stored once")
    with storage.get(info.file_id) as stored:
        assert stored.read() == b"stored once"
        assert (stored.filename, stored.content_type) == (info.filename, info.content_type)
        assert stored.checksum == info.checksum
        assert stored.last_modified == info.last_modified
