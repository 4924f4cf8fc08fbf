"""Storage benchmarks: many small files, and one large file streamed in and out.

Small files: every contender creates, reads back and deletes the same 1 KiB payloads; within a
repetition the contenders take turns every ``BATCH`` files (the order rotating between
repetitions), so that noise on the shared machine hits them all alike.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    WORK,
    KiB,
    Limit,
    MiB,
    Samples,
    SectionResult,
    Target,
    fresh_dir,
    run_child,
    timed,
)
from benchmarks.large_worker import READ_PASSES

SMALL_SIZE = 1 * KiB
SMALL_COUNT = int(os.environ.get("BENCH_SMALL_COUNT", "2000"))
LARGE_SIZE = 256 * MiB
CHUNK = 1 * MiB
FILENAME = "file.bin"
CONTENT_TYPE = "application/octet-stream"


@dataclass
class Contender:
    """One way of storing files: ``create(bytes) -> id``, ``read(id) -> bytes``, ``delete(id)``."""

    create: Callable[[bytes], str]
    read: Callable[[str], bytes]
    delete: Callable[[str], None]


def sa_depot_contender(storage: Any) -> Contender:
    def read(file_id: str) -> bytes:
        with storage.get(file_id) as stored:
            return stored.read()

    return Contender(
        create=lambda data: storage.create(data, FILENAME, CONTENT_TYPE),
        read=read,
        delete=storage.delete,
    )


def filedepot_contender(storage: Any) -> Contender:
    def read(file_id: str) -> bytes:
        stored = storage.get(file_id)
        try:
            return stored.read()
        finally:
            stored.close()

    return Contender(
        create=lambda data: storage.create(data, FILENAME, CONTENT_TYPE),
        read=read,
        delete=storage.delete,
    )


def raw_contender(directory: Path, fsync: bool) -> Contender:
    """Plain files in one directory: open, write (fsync), close. No metadata, no atomicity."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC

    def create(data: bytes) -> str:
        name = str(uuid.uuid4())
        fd = os.open(os.path.join(directory, name), flags, 0o666)
        try:
            os.write(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return name

    def read(name: str) -> bytes:
        with open(os.path.join(directory, name), "rb") as fileobj:
            return fileobj.read()

    def delete(name: str) -> None:
        os.unlink(os.path.join(directory, name))

    return Contender(create=create, read=read, delete=delete)


def atomic_contender(directory: Path) -> Contender:
    """Guarantee 7's recipe on plain files in one directory, and nothing else: write a
    temporary file, fsync it, rename it to its name, fsync the directory. No metadata, no
    checksum, no shard directories: the ceiling of any atomic, durable create that keeps its
    metadata inside the content's own file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    plain = raw_contender(directory, fsync=True)

    def create(data: bytes) -> str:
        name = str(uuid.uuid4())
        path = os.path.join(directory, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, flags, 0o666)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return name

    return Contender(create=create, read=plain.read, delete=plain.delete)


def make_contender(name: str) -> Contender:
    directory = fresh_dir("small", name)
    if name == "sa_depot local fsync":
        from sa_depot.io.local import LocalFileStorage

        return sa_depot_contender(LocalFileStorage(directory, fsync=True))
    if name == "sa_depot local no-fsync":
        from sa_depot.io.local import LocalFileStorage

        return sa_depot_contender(LocalFileStorage(directory, fsync=False))
    if name == "sa_depot memory":
        from sa_depot.io.memory import MemoryFileStorage

        return sa_depot_contender(MemoryFileStorage())
    if name == "filedepot local":
        from depot.io.local import LocalFileStorage as DepotLocal

        return filedepot_contender(DepotLocal(str(directory)))
    if name == "filedepot memory":
        from depot.io.memory import MemoryFileStorage as DepotMemory

        return filedepot_contender(DepotMemory())
    if name == "raw fsync":
        return raw_contender(directory, fsync=True)
    if name == "raw no-fsync":
        return raw_contender(directory, fsync=False)
    if name == "raw atomic fsync":
        return atomic_contender(directory)
    raise ValueError(name)


SMALL_CONTENDERS = [
    "sa_depot local fsync",
    "sa_depot local no-fsync",
    "sa_depot memory",
    "filedepot local",
    "filedepot memory",
    "raw fsync",
    "raw no-fsync",
    "raw atomic fsync",
]


#: Contenders take turns every BATCH files, so that a burst of load from other processes on
#: the shared machine hits all of them rather than whichever was running at the time.
BATCH = 100


def small_files_once(names: list[str], payloads: list[bytes], samples: Samples) -> None:
    contenders = {name: make_contender(name) for name in names}
    ids: dict[str, list[str]] = {name: [] for name in names}
    spent = {(name, phase): 0.0 for name in names for phase in ("create", "read", "delete")}
    batches = [payloads[i : i + BATCH] for i in range(0, len(payloads), BATCH)]
    for batch in batches:
        for name, contender in contenders.items():
            created = ids[name]
            spent[name, "create"] += timed(
                lambda c=contender, b=batch, out=created: out.extend(c.create(d) for d in b)
            )
    for start in range(0, len(payloads), BATCH):
        for name, contender in contenders.items():
            chunk = slice(start, start + BATCH)
            pairs = list(zip(ids[name][chunk], payloads[chunk], strict=True))

            def read(c: Contender = contender, p: list[tuple[str, bytes]] = pairs) -> None:
                for file_id, data in p:
                    if c.read(file_id) != data:
                        raise AssertionError("read back other content")

            spent[name, "read"] += timed(read)
    for start in range(0, len(payloads), BATCH):
        for name, contender in contenders.items():
            batch_ids = ids[name][start : start + BATCH]
            spent[name, "delete"] += timed(
                lambda c=contender, b=batch_ids: [c.delete(file_id) for file_id in b]
            )
    for name in names:
        samples.add(name, "create/s", len(payloads) / spent[name, "create"])
        samples.add(name, "get+read/s", len(payloads) / spent[name, "read"])
        samples.add(name, "delete/s", len(payloads) / spent[name, "delete"])


def small_files(repetitions: int) -> SectionResult:
    samples = Samples()
    payloads = [os.urandom(SMALL_SIZE) for _ in range(SMALL_COUNT)]
    for rep in range(repetitions):
        shift = rep % len(SMALL_CONTENDERS)
        small_files_once(SMALL_CONTENDERS[shift:] + SMALL_CONTENDERS[:shift], payloads, samples)
    section = f"small files (1 KiB x {SMALL_COUNT})"
    return SectionResult(
        name=section,
        samples=samples,
        targets=[
            Target(
                section,
                "local create, fsync on",
                "sa_depot local fsync",
                "raw fsync",
                "create/s",
                0.5,
            ),
            Target(
                section,
                "local create, fsync on",
                "sa_depot local fsync",
                "filedepot local",
                "create/s",
                1.2,
                "filedepot does not fsync",
            ),
            Target(
                section,
                "ceiling of an atomic durable create (guarantee 7's recipe alone)",
                "raw atomic fsync",
                "raw fsync",
                "create/s",
                0.0,
            ),
            Target(
                section,
                "local create, fsync off",
                "sa_depot local no-fsync",
                "raw no-fsync",
                "create/s",
                0.7,
            ),
            Target(
                section,
                "local get+read",
                "sa_depot local no-fsync",
                "filedepot local",
                "get+read/s",
                1.5,
            ),
            Target(
                section, "memory get+read", "sa_depot memory", "filedepot memory", "get+read/s", 2.0
            ),
        ],
        info=[
            (name, metric, "ops/s")
            for name in SMALL_CONTENDERS
            for metric in ("create/s", "get+read/s", "delete/s")
        ],
        notes=[
            "Each create passes the filename and content type, so no contender sniffs the "
            "content; sa_depot still hashes it (SHA-256) and writes its metadata atomically.",
            "raw fsync = open, write, fsync, close one plain file: no metadata, no atomic "
            "rename, no directory fsync (so a power loss may still lose the file's name).",
            "raw atomic fsync = guarantee 7's recipe and nothing else: write a temporary file, "
            "fsync, rename, fsync the directory (two flushes against raw fsync's one).",
        ],
    )


# -- the large file, measured in child processes (large_worker) for an honest peak RSS ---------
LARGE_CREATES = ["sa_depot fsync", "raw fsync", "sa_depot no-fsync", "raw no-fsync", "filedepot"]
LARGE_READS = ["sa_depot", "raw", "filedepot"]


def make_source() -> Path:
    source = WORK / "large-source.bin"
    if not source.exists() or source.stat().st_size != LARGE_SIZE:
        WORK.mkdir(parents=True, exist_ok=True)
        with open(source, "wb") as fileobj:
            for _ in range(LARGE_SIZE // MiB):
                fileobj.write(os.urandom(MiB))
    return source


def large_file(repetitions: int) -> SectionResult:
    repetitions = max(repetitions, 5)  # cheap, and one create swings with the disk's writeback
    samples = Samples()
    source = make_source()
    mb = LARGE_SIZE / 1e6
    for rep in range(repetitions):
        target = fresh_dir("large")
        created: dict[str, str] = {}
        order = LARGE_CREATES[rep % 2 :] + LARGE_CREATES[: rep % 2]
        for name in order:
            os.sync()  # start each create with no dirty pages of the previous one in flight
            out = run_child("large_worker", "create", name, str(source), str(target / name))
            created[name] = out["ref"]
            samples.add(f"create: {name}", "MB/s", mb / out["seconds"])
            samples.add(f"create: {name}", "peak RSS MiB", out["peak_rss_kib"] / KiB)
            samples.add(f"create: {name}", "RSS growth MiB", out["rss_growth_kib"] / KiB)
        reads = {
            "sa_depot": created["sa_depot fsync"],
            "raw": created["raw fsync"],
            "filedepot": created["filedepot"],
        }
        for name in LARGE_READS[rep % 2 :] + LARGE_READS[: rep % 2]:
            prefix = {"sa_depot": "sa_depot fsync", "raw": "raw fsync"}.get(name, name)
            out = run_child("large_worker", "read", name, reads[name], str(target / prefix))
            if out["bytes"] != LARGE_SIZE * READ_PASSES:
                raise AssertionError(f"{name} read {out['bytes']} bytes")
            samples.add(f"read: {name}", "MB/s", mb * READ_PASSES / out["seconds"])
            samples.add(f"read: {name}", "peak RSS MiB", out["peak_rss_kib"] / KiB)
            samples.add(f"read: {name}", "RSS growth MiB", out["rss_growth_kib"] / KiB)
    section = "large file (256 MiB)"
    cases = [f"create: {n}" for n in LARGE_CREATES] + [f"read: {n}" for n in LARGE_READS]
    return SectionResult(
        name=section,
        samples=samples,
        targets=[
            Target(
                section,
                "large create, fsync on",
                "create: sa_depot fsync",
                "create: raw fsync",
                "MB/s",
                0.9,
            ),
            Target(
                section,
                "large create, fsync off",
                "create: sa_depot no-fsync",
                "create: raw no-fsync",
                "MB/s",
                0.6,
            ),
            Target(section, "large streamed read", "read: sa_depot", "read: raw", "MB/s", 0.9),
        ],
        limits=[
            Limit(
                section,
                "large create, peak RSS",
                "create: sa_depot fsync",
                "peak RSS MiB",
                32,
                "MiB",
            ),
            Limit(section, "large read, peak RSS", "read: sa_depot", "peak RSS MiB", 32, "MiB"),
        ],
        info=[
            (case, m, u)
            for case in cases
            for m, u in (("MB/s", "MB/s"), ("peak RSS MiB", "MiB"), ("RSS growth MiB", "MiB"))
        ],
        notes=[
            "Each create and read runs in a fresh child process; peak RSS is its ru_maxrss "
            "(interpreter and imports included), RSS growth is peak minus the RSS just before "
            "the operation.",
            "raw = a Python loop of 1 MiB reads and writes (plus one fsync), the same chunk "
            "size sa_depot uses; sa_depot also hashes the content (SHA-256).",
            f"Reads read the files just written, from the page cache, for every contender, "
            f"{READ_PASSES} times in a row (each pass opens the file anew). Before each create "
            f"the parent calls sync(), so that no create pays for the previous one's writeback.",
        ],
    )
