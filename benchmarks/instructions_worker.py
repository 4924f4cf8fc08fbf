"""Child process of the instructions section, run under valgrind's callgrind.

    python -m benchmarks.instructions_worker <contender> <operation> <count>

Operations: ``create`` (``count`` files of 1 KiB), ``read`` (get+read ``count`` of 200 files
created beforehand), ``large`` (``count`` creates of a 16 MiB file, or raw copies of it). The
parent runs each with ``count`` 0 and N and divides the difference by N, so that start-up and
set-up fall out.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from benchmarks.bench_storage import CHUNK, make_contender
from benchmarks.common import WORK, MiB, fresh_dir

READ_FILES = 200
LARGE_SIZE = 16 * MiB


def large(contender: str, count: int) -> None:
    source = WORK / "instructions-large.bin"
    if not source.exists() or source.stat().st_size != LARGE_SIZE:
        source.write_bytes(os.urandom(LARGE_SIZE))
    directory = fresh_dir("instructions", contender)
    if contender == "sa_depot no-fsync":
        from sa_depot.io.local import LocalFileStorage

        storage = LocalFileStorage(directory, fsync=False)
        for _ in range(count):
            with open(source, "rb") as fileobj:
                storage.create(fileobj, "large.bin", "application/octet-stream")
        return
    if contender in ("raw no-fsync", "raw no-fsync + SHA-256"):
        hashing = contender.endswith("SHA-256")
        for index in range(count):
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(Path(directory, str(index)), "wb") as dst:
                while chunk := src.read(CHUNK):
                    if hashing:
                        digest.update(chunk)
                    dst.write(chunk)
        return
    raise ValueError(contender)


def main() -> None:
    contender, operation, count_text = sys.argv[1:4]
    count = int(count_text)
    if operation == "large":
        large(contender, count)
        return
    store = make_contender(contender)
    payload = os.urandom(1024)
    if operation == "create":
        for _ in range(count):
            store.create(payload)
    elif operation == "read":
        ids = [store.create(payload) for _ in range(READ_FILES)]
        for index in range(count):
            store.read(ids[index % READ_FILES])
    else:
        raise ValueError(operation)


if __name__ == "__main__":
    main()
