"""What the storage contract runs in child processes: concurrent creates, and the peak memory
of creating and reading a large file measured in a clean process
(``python -m sa_depot.testing.workers CONFIG SIZE`` prints a JSON report).

A module of its own, importing little, so that ``multiprocessing``'s spawn start method and
the measuring process import it cheaply.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import traceback
from typing import Any

from sa_depot.manager import DepotManager
from sa_depot.testing.streams import GeneratedStream


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
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the check with it
        results.put((worker, [], traceback.format_exc()))


def peak_rss() -> int:
    """This process's peak resident set size, in bytes."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure_peak_memory(config: dict[str, str], size: int) -> dict[str, Any]:
    """Create then read back a ``size``-byte file; report peak RSS around it, in bytes."""
    storage = DepotManager.from_config(config)
    # Warm up (libmagic's database, the client, the first buffers) so the baseline has them.
    warm_id = storage.create(b"warm-up\n" * 4096, filename="warm.txt")
    with storage.get(warm_id) as stored:
        stored.read()
    storage.delete(warm_id)
    gc.collect()
    baseline = peak_rss()

    stream = GeneratedStream(size)
    file_id = storage.create(stream, filename="big.bin")
    after_create = peak_rss()
    digest = hashlib.sha256()
    length = 0
    with storage.get(file_id) as stored:
        stored_checksum = stored.checksum
        stored_length = stored.content_length
        for chunk in stored.chunks():
            digest.update(chunk)
            length += len(chunk)
    after_read = peak_rss()
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
