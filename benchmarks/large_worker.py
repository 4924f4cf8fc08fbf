"""Child process of the large-file benchmark: one create or one read, then its time and RSS.

python -m benchmarks.large_worker create <contender> <source file> <target directory>
python -m benchmarks.large_worker read <contender> <file ref> <target directory>
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks.common import MiB, emit, peak_rss_kib, rss_kib

CHUNK = 1 * MiB
READ_PASSES = 4


def raw_copy(source: str, destination: str, fsync: bool) -> None:
    with open(source, "rb", buffering=0) as src, open(destination, "xb", buffering=0) as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
        if fsync:
            os.fsync(dst.fileno())


def open_storage(contender: str, directory: str) -> Any:
    if contender.startswith("sa_depot"):
        from sa_depot.io.local import LocalFileStorage

        return LocalFileStorage(directory, fsync=not contender.endswith("no-fsync"))
    from depot.io.local import LocalFileStorage as DepotLocal

    return DepotLocal(directory)


def create(contender: str, source: str, directory: str) -> dict[str, Any]:
    os.makedirs(directory, exist_ok=True)
    storage = None if contender.startswith("raw") else open_storage(contender, directory)
    before = rss_kib()
    start = time.perf_counter()
    if storage is None:
        ref = os.path.join(directory, "copy.bin")
        raw_copy(source, ref, fsync=contender == "raw fsync")
    else:
        with open(source, "rb") as fileobj:
            ref = storage.create(fileobj, "large.bin", "application/octet-stream")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "ref": ref, "before_kib": before}


def read(contender: str, ref: str, directory: str) -> dict[str, Any]:
    """Read the whole file ``READ_PASSES`` times (one pass from the page cache is too short
    to time on a noisy machine), opening it anew each time."""
    storage = None if contender == "raw" else open_storage(contender, directory)
    total = 0
    before = rss_kib()
    start = time.perf_counter()
    for _ in range(READ_PASSES):
        if storage is None:
            with open(ref, "rb", buffering=0) as fileobj:
                while chunk := fileobj.read(CHUNK):
                    total += len(chunk)
        else:
            stored = storage.get(ref)
            try:
                while chunk := stored.read(CHUNK):
                    total += len(chunk)
            finally:
                stored.close()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "ref": ref, "bytes": total, "before_kib": before}


def main() -> None:
    operation, contender, ref, directory = sys.argv[1:5]
    result = (create if operation == "create" else read)(contender, ref, directory)
    peak = peak_rss_kib()
    result["peak_rss_kib"] = peak
    result["rss_growth_kib"] = max(0, peak - result.pop("before_kib"))
    emit(result)


if __name__ == "__main__":
    main()
