"""Child process of the S3 benchmark: one large create or read, then its time and peak RSS.

python -m benchmarks.s3_worker create <sa_depot|boto3> <options json> <source file>
python -m benchmarks.s3_worker read <sa_depot|boto3> <options json> <ref>
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

from benchmarks.common import MiB, emit, peak_rss_kib, rss_kib

CHUNK = 1 * MiB
READ_PASSES = 4


def main() -> None:
    operation, contender, options_json, ref = sys.argv[1:5]
    options: dict[str, Any] = json.loads(options_json)
    bucket, prefix = options.pop("bucket"), options.pop("prefix")
    from sa_depot.io.boto3 import S3Storage

    storage = S3Storage(bucket, prefix=prefix, **options)
    client = storage.client  # both contenders use the same configured boto3 client
    client.head_bucket(Bucket=bucket)  # connect before measuring
    total = 0
    before = rss_kib()
    start = time.perf_counter()
    if operation == "create":
        with open(ref, "rb") as fileobj:
            if contender == "sa_depot":
                ref = storage.create(fileobj, "large.bin", "application/octet-stream")
            else:
                key = f"{prefix}raw-{uuid.uuid4()}"
                # boto3's managed upload with its default transfer settings (8 MiB parts above
                # 8 MiB, 10 threads)
                client.upload_fileobj(
                    fileobj, bucket, key, ExtraArgs={"ContentType": "application/octet-stream"}
                )
                ref = key
    else:
        for _ in range(READ_PASSES):  # one pass (~0.1 s) is too short to time reliably
            if contender == "sa_depot":
                with storage.get(ref) as stored:
                    while chunk := stored.read(CHUNK):
                        total += len(chunk)
            else:
                body = client.get_object(Bucket=bucket, Key=ref)["Body"]
                while chunk := body.read(CHUNK):
                    total += len(chunk)
                body.close()
    seconds = time.perf_counter() - start
    peak = peak_rss_kib()
    emit(
        {
            "seconds": seconds,
            "ref": ref,
            "bytes": total,
            "peak_rss_kib": peak,
            "rss_growth_kib": max(0, peak - before),
        }
    )


if __name__ == "__main__":
    main()
