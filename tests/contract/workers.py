"""Code the contract suite runs in child processes.

A module of its own so that ``multiprocessing``'s spawn start method can import it cheaply, and
so that ``python -m tests.contract.workers CONFIG SIZE`` measures memory in a clean process.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import resource
import sys
import traceback
from typing import Any

from sa_depot.manager import DepotManager


def create_files(
    config: dict[str, str], worker: int, count: int, barrier: Any, results: Any
) -> None:
    """Create ``count`` files once every worker is ready; report ``(id, sha256)`` pairs."""
    try:
        storage = DepotManager.from_config(config)
        barrier.wait(timeout=60)
        created = []
        for n in range(count):
            data = f"worker {worker} file {n}\n".encode() * (n + 1) + os.urandom(64)
            file_id = storage.create(data, filename=f"w{worker}-{n}.bin")
            created.append((file_id, hashlib.sha256(data).hexdigest()))
        results.put((worker, created, None))
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the test with it
        results.put((worker, [], traceback.format_exc()))


class GeneratedStream(io.RawIOBase):
    """``size`` bytes of pseudo-random content produced on demand: non-seekable, never held."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._block = memoryview(os.urandom(1024 * 1024 + 7))  # odd length: chunks differ
        self._remaining = size
        self._position = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        wanted = min(len(target), self._remaining)
        filled = 0
        while filled < wanted:
            offset = self._position % len(self._block)
            take = min(wanted - filled, len(self._block) - offset)
            target[filled : filled + take] = self._block[offset : offset + take]
            filled += take
            self._position += take
        self._remaining -= wanted
        self.sha256.update(target[:wanted])
        return wanted


def _peak_rss() -> int:
    """This process's peak resident set size, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure_peak_memory(config: dict[str, str], size: int) -> dict[str, Any]:
    """Create then read back a ``size``-byte file; report peak RSS around it."""
    storage = DepotManager.from_config(config)
    # Warm up (libmagic's database, the first chunk buffers) so the baseline includes them.
    warm_id = storage.create(b"warm-up\n" * 4096, filename="warm.txt")
    with storage.get(warm_id) as stored:
        stored.read()
    storage.delete(warm_id)
    gc.collect()
    baseline = _peak_rss()

    stream = GeneratedStream(size)
    file_id = storage.create(stream, filename="big.bin")
    after_create = _peak_rss()
    digest = hashlib.sha256()
    length = 0
    with storage.get(file_id) as stored:
        stored_checksum = stored.checksum
        stored_length = stored.content_length
        for chunk in stored.chunks():
            digest.update(chunk)
            length += len(chunk)
    after_read = _peak_rss()
    storage.delete(file_id)
    return {
        "baseline": baseline,
        "after_create": after_create,
        "after_read": after_read,
        "generated_checksum": stream.sha256.hexdigest(),
        "stored_checksum": stored_checksum,
        "read_checksum": digest.hexdigest(),
        "stored_length": stored_length,
        "read_length": length,
    }


if __name__ == "__main__":
    print(json.dumps(measure_peak_memory(json.loads(sys.argv[1]), int(sys.argv[2]))))
