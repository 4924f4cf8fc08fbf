"""S3 benchmark on SeaweedFS: sa_depot's S3Storage against plain boto3 calls.

Small objects run in this process, both contenders on the same boto3 client; the large object
runs in child processes (:mod:`benchmarks.s3_worker`) for an honest peak RSS. SeaweedFS is
started with the test suite's helper (``tests/s3server.py``) on free loopback ports.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

from benchmarks.common import (
    REPO,
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
from benchmarks.s3_worker import READ_PASSES

SMALL_SIZE = 1 * KiB
SMALL_COUNT = 300
LARGE_SIZE = 64 * MiB
CONTENT_TYPE = "application/octet-stream"
SECTION_SMALL = f"S3 on SeaweedFS, small objects (1 KiB x {SMALL_COUNT})"
SECTION_LARGE = "S3 on SeaweedFS, large object (64 MiB)"


def small_once(
    storage: Any, client: Any, bucket: str, payloads: list[bytes], samples: Samples, first: str
) -> None:
    def sa_depot() -> None:
        ids: list[str] = []
        seconds = timed(
            lambda: ids.extend(storage.create(d, "f.bin", CONTENT_TYPE) for d in payloads)
        )
        samples.add("sa_depot", "create/s", len(payloads) / seconds)

        def read() -> None:
            for file_id in ids:
                with storage.get(file_id) as stored:
                    stored.read()

        samples.add("sa_depot", "get+read/s", len(ids) / timed(read))
        seconds = timed(lambda: [storage.delete(file_id) for file_id in ids])
        samples.add("sa_depot", "delete/s", len(ids) / seconds)

    def raw() -> None:
        keys = [f"raw/{uuid.uuid4()}" for _ in payloads]

        def put() -> None:
            for key, data in zip(keys, payloads, strict=True):
                client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=CONTENT_TYPE)

        samples.add("boto3", "create/s", len(keys) / timed(put))

        def read() -> None:
            for key in keys:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                body.read()
                body.close()

        samples.add("boto3", "get+read/s", len(keys) / timed(read))
        seconds = timed(lambda: [client.delete_object(Bucket=bucket, Key=key) for key in keys])
        samples.add("boto3", "delete/s", len(keys) / seconds)

    for run in [sa_depot, raw] if first == "sa_depot" else [raw, sa_depot]:
        run()


def run(repetitions: int) -> list[SectionResult]:
    sys.path.insert(0, str(REPO))
    try:
        from sa_depot.io.boto3 import S3Storage
        from tests.s3server import start_seaweed
    except ImportError as exc:
        reason = f"cannot import the S3 storage or the SeaweedFS helper: {exc}"
        return [SectionResult(SECTION_SMALL, Samples(), skipped=reason)]
    server = start_seaweed(fresh_dir("seaweedfs"))
    try:
        bucket = server.new_bucket()
        options = server.storage_options(connect_timeout=10.0, read_timeout=60.0, max_attempts=3)
        storage = S3Storage(bucket, prefix="bench/", **options)
        client = storage.client
        payloads = [os.urandom(SMALL_SIZE) for _ in range(SMALL_COUNT)]
        small = Samples()
        small_once(storage, client, bucket, payloads[:20], Samples(), "sa_depot")  # warm-up
        for rep in range(repetitions):
            small_once(
                storage, client, bucket, payloads, small, "sa_depot" if rep % 2 == 0 else "boto3"
            )

        source = WORK / "s3-source.bin"
        if not source.exists() or source.stat().st_size != LARGE_SIZE:
            source.write_bytes(os.urandom(LARGE_SIZE))
        worker_options = json.dumps({"bucket": bucket, "prefix": "bench/", **options})
        large = Samples()
        mb = LARGE_SIZE / 1e6
        for rep in range(max(repetitions, 5)):  # cheap, and single uploads swing
            refs = {}
            order = ["sa_depot", "boto3"] if rep % 2 == 0 else ["boto3", "sa_depot"]
            for name in order:
                out = run_child("s3_worker", "create", name, worker_options, str(source))
                refs[name] = out["ref"]
                large.add(f"create: {name}", "MB/s", mb / out["seconds"])
                large.add(f"create: {name}", "peak RSS MiB", out["peak_rss_kib"] / KiB)
                large.add(f"create: {name}", "RSS growth MiB", out["rss_growth_kib"] / KiB)
            for name in order:
                out = run_child("s3_worker", "read", name, worker_options, refs[name])
                if out["bytes"] != LARGE_SIZE * READ_PASSES:
                    raise AssertionError(f"{name} read {out['bytes']} bytes")
                large.add(f"read: {name}", "MB/s", mb * READ_PASSES / out["seconds"])
                large.add(f"read: {name}", "peak RSS MiB", out["peak_rss_kib"] / KiB)
                large.add(f"read: {name}", "RSS growth MiB", out["rss_growth_kib"] / KiB)
            storage.delete(refs["sa_depot"])
            client.delete_object(Bucket=bucket, Key=refs["boto3"])
        server.remove_bucket(bucket)
    finally:
        server.stop()

    small_result = SectionResult(
        name=SECTION_SMALL,
        samples=small,
        targets=[
            Target(SECTION_SMALL, "S3 small create", "sa_depot", "boto3", "create/s", 0.95),
            Target(SECTION_SMALL, "S3 small get+read", "sa_depot", "boto3", "get+read/s", 0.95),
            Target(SECTION_SMALL, "S3 small delete", "sa_depot", "boto3", "delete/s", 0.0),
        ],
        info=[
            (name, m, "ops/s")
            for name in ("sa_depot", "boto3")
            for m in ("create/s", "get+read/s", "delete/s")
        ],
        notes=[
            "boto3 = put_object / get_object + read / delete_object on the same client, "
            "with the content type but no metadata; sa_depot also sends its metadata "
            "(filename, SHA-256) and computes the checksum.",
        ],
    )
    large_result = SectionResult(
        name=SECTION_LARGE,
        samples=large,
        targets=[
            Target(
                SECTION_LARGE, "S3 large create", "create: sa_depot", "create: boto3", "MB/s", 0.95
            ),
            Target(
                SECTION_LARGE,
                "S3 large streamed read",
                "read: sa_depot",
                "read: boto3",
                "MB/s",
                0.95,
            ),
        ],
        limits=[
            Limit(
                SECTION_LARGE,
                "S3 large create, constant memory",
                "create: sa_depot",
                "RSS growth MiB",
                32,
                "MiB",
            ),
            Limit(
                SECTION_LARGE,
                "S3 large read, constant memory",
                "read: sa_depot",
                "RSS growth MiB",
                32,
                "MiB",
            ),
        ],
        info=[
            (f"{op}: {name}", m, u)
            for op in ("create", "read")
            for name in ("sa_depot", "boto3")
            for m, u in (("MB/s", "MB/s"), ("peak RSS MiB", "MiB"), ("RSS growth MiB", "MiB"))
        ],
        notes=[
            "boto3 create = `upload_fileobj` with boto3's default transfer settings (multipart "
            "above 8 MiB, 8 MiB parts, 10 threads; no checksum, no metadata); sa_depot reads "
            "the file once to hash it (the SHA-256 of the whole, put in the metadata when the "
            "upload starts, and of each part, beside it), then sends a multipart upload of 8 MiB "
            "parts, 2 at a time, each read from the file as it is sent (os.pread: no part is "
            "held in memory), straight to its final key (an incomplete upload is invisible), "
            "checking that each part sent hashes as it was hashed.",
            f"A read reads the object {READ_PASSES} times (one GET each). "
            "Each create and read runs in a fresh child process; constant memory = RSS growth "
            "during the operation (a 64 MiB object must not be held in memory).",
        ],
    )
    return [small_result, large_result]
