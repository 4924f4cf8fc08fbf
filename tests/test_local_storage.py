"""LocalFileStorage beyond the shared contract: layout, atomicity, durability, filedepot files,
leftovers and disk errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sa_depot.exceptions import ConfigurationError, FileNotFound, InvalidFileId, StorageError
from sa_depot.io.local import SHARD_PERIOD, LocalFileStorage
from tests.storages import local_files

REPO_ROOT = Path(__file__).resolve().parents[1]
CHUNK = 16 * 1024


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def storage(root: Path) -> LocalFileStorage:
    return LocalFileStorage(root, chunk_size=CHUNK)


def files_under(storage: LocalFileStorage) -> set[str]:
    return local_files(storage)


def files_under_for(storage: LocalFileStorage, file_id: str) -> set[str]:
    return {path for path in files_under(storage) if os.path.basename(path).startswith(file_id)}


def read_back(storage: LocalFileStorage, file_id: str) -> bytes:
    with storage.get(file_id) as stored:
        return stored.read()


def set_age(path: Path, age: timedelta) -> None:
    then = time.time() - age.total_seconds()
    os.utime(path, (then, then))


# -- construction and layout ------------------------------------------------------------------
def test_the_constructor_creates_the_directory_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "c"
    LocalFileStorage(root)
    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_the_constructor_accepts_an_existing_directory_and_keeps_its_files(
    storage: LocalFileStorage,
) -> None:
    file_id = storage.create(b"kept")
    reopened = LocalFileStorage(storage.storage_path)
    assert read_back(reopened, file_id) == b"kept"


def test_a_storage_path_that_is_a_file_raises_storage_error(tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.write_bytes(b"not a directory")
    with pytest.raises(StorageError, match="cannot create the storage directory") as raised:
        LocalFileStorage(occupied)
    assert str(occupied) in str(raised.value)
    assert isinstance(raised.value.__cause__, OSError)


def test_create_directory_false_creates_nothing_and_says_what_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "typo"
    storage = LocalFileStorage(root, create_directory=False)
    missing = "0b4e28ba-2fa1-41d2-883f-0016d3cca427"
    with pytest.raises(StorageError, match="the storage directory does not exist") as raised:
        storage.list()
    assert str(root) in str(raised.value)
    with pytest.raises(FileNotFound, match="the storage directory does not exist"):
        storage.get(missing)
    assert not storage.exists(missing)
    with pytest.raises(StorageError, match="the storage directory does not exist"):
        storage.create(b"nowhere to go")
    assert not root.exists()

    root.mkdir()  # once it exists, the storage works as any other
    file_id = storage.create(b"now there is")
    assert storage.list() == [file_id]
    with pytest.raises(FileNotFound) as not_found:
        storage.get(missing)
    assert "storage directory" not in str(not_found.value)


def test_a_non_positive_chunk_size_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="chunk_size must be a positive"):
        LocalFileStorage(tmp_path / "files", chunk_size=0)
    assert not (tmp_path / "files").exists()


def test_files_are_sharded_two_levels_deep(storage: LocalFileStorage, root: Path) -> None:
    contents = {storage.create(f"file {n}".encode() * n, f"{n}.txt"): n for n in range(40)}

    assert all(len(entry.name) == 2 and entry.is_dir() for entry in root.iterdir())
    for file_id, n in contents.items():
        shard = root / file_id[:2] / file_id[2:4]
        record = json.loads((shard / f"{file_id}.json").read_text())
        blob = shard / record["blob"]
        assert record["filename"] == f"{n}.txt"
        assert blob.read_bytes() == f"file {n}".encode() * n
        assert sorted(p.name for p in shard.glob(f"{file_id}*")) == sorted(
            [f"{file_id}.json", record["blob"]]
        )
        with storage.get(file_id) as stored:
            assert stored.local_path == str(blob)


def test_new_ids_are_uuids_whose_first_digits_count_the_periods_of_their_creation(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_796_083_200.0  # 2026-12-01T00:00:00Z
    monkeypatch.setattr(time, "time", lambda: now)

    ids = [storage.new_file_id() for _ in range(50)]

    assert len(set(ids)) == 50
    period = int(now) // SHARD_PERIOD % 65536
    for file_id in ids:
        parsed = uuid.UUID(file_id)
        assert str(parsed) == file_id  # canonical, lowercase
        assert (parsed.version, parsed.variant) == (8, uuid.RFC_4122)
        assert int(file_id[:4], 16) == period
    # the other 106 bits are random: every one of them varies across 50 ids
    varying = 0
    for file_id in ids:
        varying |= uuid.UUID(file_id).int ^ uuid.UUID(ids[0]).int
    assert varying == ((1 << 112) - 1) & ~(0xF << 76) & ~(0x3 << 62)


def test_files_created_within_one_period_share_a_shard_directory(
    storage: LocalFileStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_796_083_200.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = [storage.create(f"first {n}".encode()) for n in range(20)]
    clock[0] += SHARD_PERIOD
    second = [storage.create(f"second {n}".encode()) for n in range(20)]

    shards = {path.relative_to(root).parent for path in root.glob("*/*/*.json")}
    assert shards == {Path(first[0][:2], first[0][2:4]), Path(second[0][:2], second[0][2:4])}
    assert len(shards) == 2
    assert sorted(storage.list()) == sorted(first + second)
    assert [read_back(storage, i) for i in second] == [f"second {n}".encode() for n in range(20)]


def test_stored_files_are_real_seekable_files(storage: LocalFileStorage) -> None:
    file_id = storage.create(b"0123456789")
    with storage.get(file_id) as stored:
        assert stored.seekable()
        assert os.fstat(stored.fileno()).st_size == 10
        stored.seek(4)
        assert stored.read(3) == b"456"


def test_list_ignores_leftovers_and_foreign_files(storage: LocalFileStorage, root: Path) -> None:
    file_id = storage.create(b"real")
    shard = root / file_id[:2] / file_id[2:4]
    other = str(uuid.uuid4())
    (shard / f"{other}.0123456789abcdef").write_bytes(b"orphan blob")
    (shard / f"{other}.json.0123456789abcdef.tmp").write_bytes(b"{}")
    (root / "README").write_text("not a file of ours")
    (root / "zz").mkdir()
    (root / "zz" / "yy").mkdir()
    (root / "zz" / "yy" / f"{other}.json").write_text("{}")
    misplaced = root / "00" / "00"
    misplaced.mkdir(parents=True)
    (misplaced / f"{other}.json").write_text('{"blob": "x"}')  # not in its shard

    assert storage.list() == [file_id]
    assert not storage.exists(other)


# -- atomicity --------------------------------------------------------------------------------
def test_a_reader_opened_before_a_replace_reads_the_old_version(
    storage: LocalFileStorage, root: Path
) -> None:
    old, new = b"o" * (CHUNK * 3), b"n" * (CHUNK * 2)
    file_id = storage.create(old, "v1.bin")

    with storage.get(file_id) as before:
        first = before.read(CHUNK)
        storage.replace(file_id, new, "v2.bin")
        assert first + before.read() == old
        assert before.filename == "v1.bin"
    with storage.get(file_id) as after:
        assert after.read() == new
        assert after.filename == "v2.bin"
    shard = root / file_id[:2] / file_id[2:4]
    assert len(list(shard.iterdir())) == 2  # the metadata and the new blob only


def test_a_reader_racing_a_replace_gets_one_consistent_version(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob named by the metadata it read vanishes before it opens it: it looks again."""
    file_id = storage.create(b"first version")
    locate = storage._locate
    raced: list[bool] = []

    def locate_then_replace(*args: Any, **kwargs: Any) -> Any:
        located = locate(*args, **kwargs)
        if not raced:
            raced.append(True)
            storage.replace(file_id, b"second version")
        return located

    monkeypatch.setattr(storage, "_locate", locate_then_replace)
    with storage.get(file_id) as stored:
        data = stored.read()
        checksum = stored.checksum
    assert raced
    assert data == b"second version"
    assert checksum == storage.info(file_id).checksum


def test_a_reader_racing_a_delete_gets_file_not_found(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = storage.create(b"doomed")
    locate = storage._locate

    raced: list[bool] = []

    def locate_then_delete(*args: Any, **kwargs: Any) -> Any:
        located = locate(*args, **kwargs)
        if not raced:
            raced.append(True)
            storage.delete(file_id)
        return located

    monkeypatch.setattr(storage, "_locate", locate_then_delete)
    with pytest.raises(FileNotFound):
        storage.get(file_id)


STALLING_WRITER = """
import io, sys, time
from sa_depot.io.local import LocalFileStorage

class Stalling(io.RawIOBase):
    sent = 0
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.sent >= 3:
            print("stalled", flush=True)
            time.sleep(600)
        self.sent += 1
        buffer[:] = b"x" * len(buffer)
        return len(buffer)

LocalFileStorage(sys.argv[1], chunk_size=4096).create(Stalling(), "never.bin")
"""


def test_a_process_killed_mid_write_leaves_nothing_visible(
    storage: LocalFileStorage, root: Path
) -> None:
    kept = storage.create(b"kept")
    writer = subprocess.Popen(
        [sys.executable, "-c", STALLING_WRITER, str(root)],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"stalled"  # mid-write, content on disk
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)

    leftovers = files_under(storage) - files_under_for(storage, kept)
    assert len(leftovers) == 1  # the partial blob
    assert storage.list() == [kept]

    assert storage.remove_incomplete() == []  # younger than the grace period: kept
    removed = storage.remove_incomplete(older_than=timedelta(0))
    assert [os.path.relpath(p, root) for p in removed] == sorted(leftovers)
    assert files_under(storage) == files_under_for(storage, kept)
    assert read_back(storage, kept) == b"kept"


def test_remove_incomplete_removes_only_old_leftovers(
    storage: LocalFileStorage, root: Path
) -> None:
    committed = storage.create(b"committed")
    shard = root / committed[:2] / committed[2:4]
    for path in shard.iterdir():
        set_age(path, timedelta(days=30))  # old committed files are never leftovers
    stale = [
        shard / f"{committed}.00000000000000aa",  # a superseded blob of a committed file
        shard / f"{uuid.uuid4()}.00000000000000bb",  # a blob whose metadata never came
        shard / f"{committed}.json.00000000000000cc.tmp",
    ]
    young = shard / f"{uuid.uuid4()}.00000000000000dd"  # maybe an upload in progress
    foreign = shard / "notes.txt"
    for path in [*stale, young, foreign]:
        path.write_bytes(b"x")
    for path in [*stale, foreign]:
        set_age(path, timedelta(hours=2))
    unfinished_legacy = root / str(uuid.uuid1())  # filedepot died before its metadata
    unfinished_legacy.mkdir()
    (unfinished_legacy / "file").write_bytes(b"no metadata")
    set_age(unfinished_legacy / "file", timedelta(hours=2))
    set_age(unfinished_legacy, timedelta(hours=2))
    legacy_in_progress = root / str(uuid.uuid1())  # filedepot still writing its content
    legacy_in_progress.mkdir()
    (legacy_in_progress / "file").write_bytes(b"still arriving")
    set_age(legacy_in_progress, timedelta(hours=2))

    removed = storage.remove_incomplete(older_than=timedelta(hours=1))

    assert sorted(removed) == sorted(str(p) for p in [*stale, unfinished_legacy])
    assert young.exists() and foreign.exists() and legacy_in_progress.exists()
    assert read_back(storage, committed) == b"committed"


# -- durability -------------------------------------------------------------------------------
class SyscallLog:
    """Records fsyncs (by inode and kind) and renames, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, Any]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            info = os.fstat(fd)
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
            self.events.append((f"fsync-{kind}", info.st_ino))
            real_fsync(fd)

        def replace(src: Any, dst: Any) -> None:
            real_replace(src, dst)
            self.events.append(("replace", os.stat(dst).st_ino))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def index(self, event: tuple[str, Any]) -> int:
        return self.events.index(event)


def test_fsync_flushes_content_and_metadata_before_the_rename_and_the_directory_after(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalFileStorage(root, fsync=True)
    log = SyscallLog(monkeypatch)

    file_id = storage.create(b"durable", "d.txt")

    shard = root / file_id[:2] / file_id[2:4]
    metadata = shard / f"{file_id}.json"
    blob = shard / json.loads(metadata.read_text())["blob"]
    blob_ino, metadata_ino, dir_ino = (os.stat(p).st_ino for p in (blob, metadata, shard))
    commit = log.index(("replace", metadata_ino))
    assert log.index(("fsync-file", blob_ino)) < commit
    assert log.index(("fsync-file", metadata_ino)) < commit
    assert ("fsync-dir", dir_ino) in log.events[commit:]

    log.events.clear()
    storage.replace(file_id, b"durable too")
    storage.delete(file_id)
    kinds = [kind for kind, _ in log.events]
    assert kinds.count("fsync-file") == 2 and kinds.count("fsync-dir") >= 2


def test_fsync_false_never_calls_fsync(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalFileStorage(root, fsync=False)
    log = SyscallLog(monkeypatch)

    file_id = storage.create(b"fast")
    storage.replace(file_id, b"faster")
    storage.delete(file_id)

    assert [kind for kind, _ in log.events if kind.startswith("fsync")] == []
    assert [kind for kind, _ in log.events] == ["replace", "replace"]  # still atomic


#: Content of a size no metadata file has, so that a patched os.fsync tells the blob apart.
CONTENT = b"c" * 5000


def flushed_kind(fd: int) -> str:
    """What a write flushes through ``fd``: ``directory``, ``content`` or ``metadata``."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        return "directory"
    return "content" if info.st_size == len(CONTENT) else "metadata"


@pytest.mark.parametrize("operation", ["create", "replace"])
def test_the_metadata_is_renamed_only_once_every_flush_before_it_has_completed(
    root: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The blob's data, its directory entry, a new shard's directories and the metadata are
    durable before the rename makes the metadata name the blob, whichever thread flushed them."""
    storage = LocalFileStorage(root)
    file_id = storage.create(b"previous") if operation == "replace" else ""
    completed: set[int] = set()  # inodes whose fsync has returned
    renamed: list[Any] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = flushed_kind(fd)
        if kind != "metadata":  # slow: a rename that did not wait for them would come first
            time.sleep(0.2 if kind == "content" else 0.05)
        real_fsync(fd)
        completed.add(os.fstat(fd).st_ino)

    def replace(src: Any, dst: Any) -> None:
        directory = Path(dst).parent
        blob = directory / json.loads(Path(src).read_text())["blob"]
        durable_first = [blob, Path(src), directory]
        if operation == "create":  # a new shard: its directories' entries too
            durable_first += [root, directory.parent]
        assert [p for p in durable_first if p.stat().st_ino not in completed] == []
        real_replace(src, dst)
        renamed.append(dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    if operation == "create":
        file_id = storage.create(CONTENT)
    else:
        storage.replace(file_id, CONTENT)
    monkeypatch.undo()

    assert len(renamed) == 1
    assert read_back(storage, file_id) == CONTENT


def test_the_flushes_before_the_rename_overlap(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob and the metadata are flushed at the same time: their waits for the disk
    overlap rather than add up."""
    storage = LocalFileStorage(root)
    both_flushing = threading.Barrier(2, timeout=5)
    met: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        kind = flushed_kind(fd)
        if kind != "directory":
            try:
                both_flushing.wait()  # returns only once the other one is being flushed too
                met.append(kind)
            except threading.BrokenBarrierError:
                pass
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    file_id = storage.create(CONTENT)
    monkeypatch.undo()

    assert sorted(met) == ["content", "metadata"]
    assert read_back(storage, file_id) == CONTENT


def test_fsync_false_starts_no_thread(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    storage = LocalFileStorage(root, fsync=False)
    file_id = storage.create(CONTENT)
    storage.replace(file_id, b"next")
    storage.delete(file_id)

    assert started == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_flushes_with_threads_of_its_own(root: Path) -> None:
    """The parent's flushing threads do not exist in a child: it must not wait for them."""
    storage = LocalFileStorage(root)
    storage.create(b"parent")  # the parent's threads are running now
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(30)  # a child waiting forever is killed instead
            storage.create(b"child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(read_back(storage, file_id) for file_id in storage.list()) == [
        b"child",
        b"parent",
    ]


EXITING_WRITER = """
import atexit, sys
from sa_depot.io.local import LocalFileStorage

storage = LocalFileStorage(sys.argv[1])
storage.create(b"before the exit")
atexit.register(lambda: storage.create(b"at the exit"))  # the executor has shut down by then
"""


def test_a_process_that_flushed_in_threads_exits_and_can_still_write_at_exit(
    root: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXITING_WRITER, str(root)],
        capture_output=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )

    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    storage = LocalFileStorage(root)
    assert sorted(read_back(storage, file_id) for file_id in storage.list()) == [
        b"at the exit",
        b"before the exit",
    ]


# -- disk errors ------------------------------------------------------------------------------
def fail_nth(
    monkeypatch: pytest.MonkeyPatch, name: str, n: int, error: OSError, target: Any = os
) -> None:
    """Make the ``n``-th call of ``target.name`` (1-based) raise ``error``."""
    real = getattr(target, name)
    calls = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


# Writing two chunks of content then the metadata: os.write calls 1 and 2 are content, 3 is
# the metadata.
@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_a_full_disk_raises_storage_error_and_leaves_nothing(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch, failing_write: int
) -> None:
    kept = storage.create(b"kept")
    before = files_under(storage)
    fail_nth(monkeypatch, "write", failing_write, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    with pytest.raises(StorageError) as raised:
        storage.create(b"y" * (CHUNK + 100), "big.bin")

    message = str(raised.value)
    assert "No space left on device" in message and "ENOSPC" in message
    assert storage.storage_path in message
    assert "free some disk space" in message
    assert isinstance(raised.value, OSError)
    assert raised.value.__cause__ is not None
    assert files_under(storage) == before
    assert storage.list() == [kept]


LARGE = CHUNK * 6 + 7  # past the size from which a create writes beside its hashing


def large_content(kind: str, tmp_path: Path) -> Any:
    data = os.urandom(LARGE)
    if kind == "bytes":
        return data, data
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    return data, open(path, "rb")  # closed by the caller


@pytest.mark.parametrize("kind", ["bytes", "file"])
def test_a_large_content_is_stored_whole_with_its_checksum(
    storage: LocalFileStorage, tmp_path: Path, kind: str
) -> None:
    data, content = large_content(kind, tmp_path)
    try:
        file_id = storage.create(content, "large.bin")
    finally:
        if kind == "file":
            content.close()

    assert read_back(storage, file_id) == data
    info = storage.info(file_id)
    assert info.content_length == LARGE
    assert info.checksum == hashlib.sha256(data).hexdigest()


# A large content: os.write calls 1 to 7 are content, 8 is the metadata.
@pytest.mark.parametrize("failing_write", [1, 4, 7, 8])
@pytest.mark.parametrize("kind", ["bytes", "file"])
def test_a_full_disk_during_a_large_create_raises_and_leaves_nothing(
    storage: LocalFileStorage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    failing_write: int,
) -> None:
    kept = storage.create(b"kept")
    before = files_under(storage)
    data, content = large_content(kind, tmp_path)
    fail_nth(monkeypatch, "write", failing_write, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    try:
        with pytest.raises(StorageError, match="No space left on device"):
            storage.create(content, "large.bin")
    finally:
        if kind == "file":
            content.close()

    assert files_under(storage) == before
    assert storage.list() == [kept]
    monkeypatch.undo()  # the disk has room again: the same content can be stored
    file_id = storage.create(data, "large.bin")
    assert read_back(storage, file_id) == data


LARGE_AT_EXIT = """
import atexit, sys, threading
from sa_depot.io.local import LocalFileStorage

storage = LocalFileStorage(sys.argv[1], chunk_size=16 * 1024)
data = bytes(range(256)) * 1024  # 16 chunks: hashed beside the write when a thread can start

def store(when):
    file_id = storage.create(data, "large.bin")
    with storage.get(file_id) as stored:
        print(when, stored.read() == data, flush=True)

atexit.register(store, "at exit")
threading.Thread(target=lambda: (threading.main_thread().join(), store("after main"))).start()
"""


def test_a_large_create_works_after_the_main_thread_and_at_exit(root: Path) -> None:
    """Threads and executors may no longer start then: the hashing happens in place."""
    done = subprocess.run(
        [sys.executable, "-c", LARGE_AT_EXIT, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )

    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["after main True", "at exit True"]


def test_an_interrupted_large_create_leaves_nothing_and_no_thread(
    storage: LocalFileStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = storage.create(b"kept")
    before = files_under(storage)
    data, content = large_content("file", tmp_path)
    fail_nth(monkeypatch, "write", 3, KeyboardInterrupt())  # type: ignore[arg-type]

    try:
        with pytest.raises(KeyboardInterrupt):
            storage.create(content, "large.bin")
    finally:
        content.close()

    assert files_under(storage) == before
    assert storage.list() == [kept]
    assert not [t for t in threading.enumerate() if t.name == "sa-depot-hash"]


def test_a_full_disk_during_replace_keeps_the_previous_version(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = storage.create(b"previous", "previous.txt")
    before = files_under(storage)
    fail_nth(monkeypatch, "write", 2, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    with pytest.raises(StorageError, match="No space left"):
        storage.replace(file_id, b"z" * (CHUNK * 3), "next.bin")

    assert files_under(storage) == before
    assert read_back(storage, file_id) == b"previous"
    assert storage.info(file_id).filename == "previous.txt"


def rename_failing(
    monkeypatch: pytest.MonkeyPatch, failure: str
) -> tuple[type[BaseException], str | None]:
    """Make the commit rename fail (``'rename fails'``: EIO, nothing renamed) or be
    interrupted right after it (``'interrupted after the rename'``: Ctrl-C once renamed);
    return what the write raises then, and what its message says."""
    if failure == "rename fails":
        fail_nth(monkeypatch, "replace", 1, OSError(errno.EIO, os.strerror(errno.EIO)))
        return StorageError, "Input/output error"
    real_replace = os.replace
    renames = []

    def interrupted_after(source: str, target: str) -> None:
        real_replace(source, target)
        renames.append(target)
        if len(renames) == 1:  # the commit rename, not the restore
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_after)
    return KeyboardInterrupt, None


@pytest.mark.parametrize("failure", ["rename fails", "interrupted after the rename"])
@pytest.mark.parametrize("operation", ["create", "replace"])
def test_a_failed_or_interrupted_commit_rename_leaves_the_previous_state(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch, operation: str, failure: str
) -> None:
    file_id = storage.create(b"previous")
    before = files_under(storage)
    raised, message = rename_failing(monkeypatch, failure)

    with pytest.raises(raised, match=message):
        if operation == "create":
            storage.create(b"new")
        else:
            storage.replace(file_id, b"new")
    monkeypatch.undo()

    # no metadata left naming a blob that the clean-up removed, no blob left over
    assert files_under(storage) == before
    assert storage.list() == [file_id]
    assert read_back(storage, file_id) == b"previous"


@pytest.mark.parametrize("operation", ["create", "replace"])
def test_a_failing_directory_flush_after_the_commit_rolls_it_back(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The rename happened but may not survive a crash: report failure, restore the state."""
    file_id = storage.create(b"previous", "previous.txt")
    before = files_under(storage)
    real_fsync = os.fsync
    renamed = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        renamed.append(dst)

    def fsync(fd: int) -> None:
        if renamed and stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StorageError, match="cannot flush the directory"):
        if operation == "create":
            storage.create(b"new")
        else:
            storage.replace(file_id, b"new", "new.txt")
    monkeypatch.undo()

    assert files_under(storage) == before
    assert storage.list() == [file_id]
    assert read_back(storage, file_id) == b"previous"
    assert storage.info(file_id).filename == "previous.txt"


@pytest.mark.parametrize("operation", ["create", "replace"])
@pytest.mark.parametrize("flushed", ["content", "directory", "metadata"])
def test_a_failing_flush_before_the_commit_raises_and_leaves_the_previous_state(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch, operation: str, flushed: str
) -> None:
    """The flushes before the rename run in several threads: a failure in any of them is the
    same StorageError, once the others are done, and the write leaves nothing behind."""
    file_id = storage.create(b"previous", "previous.txt")
    before = files_under(storage)
    failed_in: list[str] = []
    renamed: list[Any] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        if not renamed and flushed_kind(fd) == flushed:
            failed_in.append(threading.current_thread().name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        renamed.append(dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StorageError) as raised:
        if operation == "create":
            storage.create(CONTENT, "new.txt")
        else:
            storage.replace(file_id, CONTENT, "new.txt")
    monkeypatch.undo()

    message = str(raised.value)
    named = {
        "content": r"cannot write '[^']+\.[0-9a-f]{16}'",
        "directory": r"cannot flush the directory '[^']+'",
        "metadata": r"cannot write '[^']+\.json\.[0-9a-f]{16}\.tmp'",
    }[flushed]
    assert re.search(
        f"{named}: No space left on device \\(ENOSPC\\); free some disk space", message
    )
    assert storage.storage_path in message
    assert isinstance(raised.value.__cause__, OSError)
    # the metadata is flushed by the writing thread, the others by the storage's threads
    in_writing_thread = [name == threading.current_thread().name for name in failed_in]
    assert in_writing_thread and all(in_writing_thread) == (flushed == "metadata")
    assert renamed == []
    assert files_under(storage) == before
    assert storage.list() == [file_id]
    assert read_back(storage, file_id) == b"previous"
    assert storage.info(file_id).filename == "previous.txt"
    assert read_back(storage, storage.create(b"next")) == b"next"  # the threads still work


def test_a_permission_error_raises_storage_error_saying_what_to_do(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated: the tests may run as root, whom file permissions do not stop.
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    fail_nth(monkeypatch, "mkdir", 1, denied)
    with pytest.raises(StorageError, match="Permission denied") as raised:
        storage.create(b"data")
    assert "read and write access" in str(raised.value)
    assert storage.list() == []

    fail_nth(monkeypatch, "scandir", 1, denied)
    with pytest.raises(StorageError, match="cannot list"):
        storage.list()


def test_an_unreadable_metadata_file_raises_storage_error(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = storage.create(b"data")
    real_open = os.open

    def deny_metadata(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".json"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("os.open", deny_metadata)
    with pytest.raises(StorageError, match="cannot read"):
        storage.get(file_id)


def test_damaged_metadata_is_reported_and_can_still_be_deleted(
    storage: LocalFileStorage, root: Path
) -> None:
    file_id = storage.create(b"data")
    metadata = root / file_id[:2] / file_id[2:4] / f"{file_id}.json"
    metadata.write_text("{truncated")

    with pytest.raises(StorageError, match="not a JSON object"):
        storage.get(file_id)
    storage.delete(file_id)
    assert not storage.exists(file_id)


def test_metadata_naming_a_missing_blob_is_reported(storage: LocalFileStorage, root: Path) -> None:
    file_id = storage.create(b"data")
    with storage.get(file_id) as stored:
        assert stored.local_path is not None
        os.unlink(stored.local_path)
    with pytest.raises(StorageError, match="does not exist"):
        storage.get(file_id)


# -- ids --------------------------------------------------------------------------------------
class PermissiveIds(LocalFileStorage):
    """A subclass whose id policy lets anything through: the paths must still be checked."""

    def is_valid_id(self, file_id: str) -> bool:
        return True


@pytest.mark.parametrize("bad_id", ["../../../etc/passwd", "..", "a/b", "/abs", "..%", "a\0"])
def test_paths_never_leave_the_storage_even_with_a_lax_id_policy(
    tmp_path: Path, bad_id: str
) -> None:
    storage = PermissiveIds(tmp_path / "files")
    for operation in (storage.get, storage.exists, storage.delete):
        with pytest.raises(InvalidFileId):
            operation(bad_id)
    with pytest.raises(InvalidFileId):
        storage.replace(bad_id, b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["files"]


# -- filedepot's layout -----------------------------------------------------------------------
def make_legacy_file(root: Path, data: bytes, **metadata: Any) -> str:
    """A file as filedepot's LocalFileStorage wrote it: ``<id>/file`` + ``<id>/metadata.json``."""
    file_id = str(uuid.uuid1())
    directory = root / file_id
    directory.mkdir(parents=True)
    (directory / "file").write_bytes(data)
    record = {
        "filename": "legacy.txt",
        "content_type": "text/plain",
        "content_length": len(data),
        "last_modified": "2019-05-04 12:30:00",
        **metadata,
    }
    (directory / "metadata.json").write_text(json.dumps(record))
    return file_id


def test_filedepot_files_are_readable(storage: LocalFileStorage, root: Path) -> None:
    file_id = make_legacy_file(root, b"written by filedepot", filename="été.txt")
    new_id = storage.create(b"written by sa_depot")

    assert storage.exists(file_id)
    assert sorted(storage.list()) == sorted([file_id, new_id])
    with storage.get(file_id) as stored:
        assert stored.read() == b"written by filedepot"
        assert stored.filename == "été.txt"
        assert stored.content_type == "text/plain"
        assert stored.content_length == len(b"written by filedepot")
        assert stored.last_modified == datetime(2019, 5, 4, 12, 30, tzinfo=timezone.utc)
        assert stored.checksum is None  # filedepot stored none
        assert stored.local_path == str(root / file_id / "file")
        stored.seek(8)
        assert stored.read(2) == b"by"


def test_replacing_a_filedepot_file_moves_it_to_the_new_layout(
    storage: LocalFileStorage, root: Path
) -> None:
    file_id = make_legacy_file(root, b"old")

    storage.replace(file_id, b"new")

    assert not (root / file_id).exists()
    assert read_back(storage, file_id) == b"new"
    assert storage.info(file_id).filename == "legacy.txt"
    assert storage.info(file_id).checksum is not None
    assert storage.list() == [file_id]


def test_deleting_a_filedepot_file(storage: LocalFileStorage, root: Path) -> None:
    file_id = make_legacy_file(root, b"old")

    storage.delete(file_id)
    storage.delete(file_id)

    assert not (root / file_id).exists()
    assert not storage.exists(file_id)
    assert storage.list() == []
    with pytest.raises(FileNotFound):
        storage.get(file_id)


def test_a_filedepot_directory_without_metadata_is_invisible(
    storage: LocalFileStorage, root: Path
) -> None:
    file_id = make_legacy_file(root, b"interrupted")
    (root / file_id / "metadata.json").unlink()
    assert storage.list() == []
    assert not storage.exists(file_id)
    with pytest.raises(FileNotFound):
        storage.get(file_id)


def test_manager_reads_filedepot_configuration(root: Path) -> None:
    from sa_depot.manager import DepotManager

    file_id = make_legacy_file(root, b"configured the filedepot way")
    storage = DepotManager.configure(
        "legacy",
        {"depot.backend": "depot.io.local.LocalFileStorage", "depot.storage_path": str(root)},
    )
    assert isinstance(storage, LocalFileStorage)
    with DepotManager.get_file(f"legacy/{file_id}") as stored:
        assert stored.read() == b"configured the filedepot way"
