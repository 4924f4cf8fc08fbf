"""Guarantee 4 for direct uploads, with real processes against PostgreSQL and SeaweedFS: a
process killed (kill -9) after its flush attached a direct upload but before the commit leaves
no row and a staged object the collector removes (its token then attaches nothing); killed
after the commit, the row and its file stay, and the collector keeps them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.collector import collect
from sa_depot.direct import DirectUploads
from sa_depot.exceptions import UploadRefused
from sa_depot.io.boto3 import S3Storage
from tests.crash.harness import kill_when_ready
from tests.direct.conftest import Base, Document, keys_under, put, read
from tests.s3server import SeaweedS3


@pytest.fixture
def pg_engine(pg_url: str, s3_depot: S3Storage) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        for table in reversed(schema.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.mark.parametrize("moment", ["flushed", "committed"])
def test_killed_while_attaching_a_direct_upload(
    moment: str,
    pg_url: str,
    pg_engine: sa.Engine,
    s3_server: SeaweedS3,
    s3_depot: S3Storage,
    uploads: DirectUploads,
    tmp_path: Path,
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"attached by a process about to die")
    file_id = uploads.receive(slot.token).file_id
    args = [
        pg_url,
        s3_server.endpoint_url,
        s3_depot.bucket,
        s3_depot.prefix,
        s3_server.access_key_id,
        s3_server.secret_access_key,
        slot.token,
        moment,
    ]
    kill_when_ready("tests.direct.crash_child", *args, log=tmp_path / "child.log")

    with Session(pg_engine) as session:
        rows = session.scalars(sa.select(Document)).all()
    # a grace period the upload is past (S3 times have a resolution of a second)
    later = datetime.now(timezone.utc) + timedelta(seconds=5)
    report = collect(pg_engine, Base.metadata, grace=timedelta(0), now=later)
    assert report.errors == []
    if moment == "flushed":
        assert rows == []  # the database rolled the row back
        assert report.orphans == [f"default/{file_id}"]
        assert keys_under(s3_depot) == set()
        with Session(pg_engine) as session:
            session.add(Document(content=slot.token))
            with pytest.raises(UploadRefused) as refused:
                session.flush()
            assert refused.value.reason == "not staged"
    else:
        assert len(rows) == 1 and rows[0].content is not None
        assert rows[0].content.file_id == file_id
        assert report.orphans == []
        assert read(rows[0].content) == b"attached by a process about to die"
        assert keys_under(s3_depot) == {file_id}
