"""A process attaching a direct upload, killed (kill -9) by tests/direct/test_direct_crash.py
when it prints READY: after the flush verified and wrote the row (not committed), or after the
commit.

    python -m tests.direct.crash_child DB_URL ENDPOINT BUCKET PREFIX KEY SECRET TOKEN MOMENT
"""

from __future__ import annotations

import sys
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.direct import DirectUploads
from sa_depot.manager import DepotManager
from tests.direct.conftest import SECRET, Document


def main(argv: list[str]) -> None:
    db_url, endpoint, bucket, prefix, access_key, secret_key, token, moment = argv
    DepotManager.configure(
        "default",
        {
            "depot.backend": "sa_depot.io.boto3.S3Storage",
            "depot.bucket": bucket,
            "depot.prefix": prefix,
            "depot.endpoint_url": endpoint,
            "depot.access_key_id": access_key,
            "depot.secret_access_key": secret_key,
            "depot.region_name": "us-east-1",
        },
    )
    DirectUploads.configure(SECRET)
    engine = sa.create_engine(db_url)
    session = Session(engine)
    session.add(Document(content=token))
    session.flush()  # verified, registered, the row written: all uncommitted
    if moment == "committed":
        session.commit()
    print("READY", flush=True)
    time.sleep(600)  # killed here


if __name__ == "__main__":
    main(sys.argv[1:])
