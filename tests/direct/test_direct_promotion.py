"""A direct upload to a column with ``promote_to``: the staged object is the queued file, and
the promotion after the commit runs the column's filters and moves the result to the public
storage, as for content uploaded through the application."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.direct import DirectUploads
from sa_depot.fields.interfaces import DepotFileInfo, FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.boto3 import S3Storage
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import EmbeddedExecutor, is_queued, run
from sa_depot.promotion import job as promotion_job
from tests.direct.conftest import keys_under, put, read


class Upper(FileFilter):
    """Stores an upper-cased copy beside the promoted file (a thumbnail's stand-in)."""

    def on_save(self, uploaded: DepotFileInfo) -> None:
        with uploaded.file as stored:
            data = stored.read()
        path, _ = uploaded.store_content(data.upper(), "upper.txt", "text/plain")
        uploaded["upper_path"] = path


@pytest.fixture
def photo_model() -> Iterator[Any]:
    class Base(DeclarativeBase):
        pass

    class Scan(Base):
        __tablename__ = f"direct_scans_{uuid.uuid4().hex[:8]}"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(promote_to="public", filters=[Upper()])
        )

    yield Scan
    Base.registry.dispose()


@pytest.fixture
def promoting(
    tmp_path: Path, s3_depot: S3Storage, photo_model: Any
) -> Iterator[tuple[sa.Engine, EmbeddedExecutor]]:
    DepotManager.configure(
        "public",
        {"depot.storage_path": str(tmp_path / "public"), "depot.fsync": "false"},
    )
    executor = EmbeddedExecutor(run)
    dispatch.set_executor(executor)
    promotion_job.configure(max_attempts=3, backoff=timedelta(0))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'promote.sqlite'}")
    schema.metadata.create_all(engine)
    photo_model.metadata.create_all(engine)
    yield engine, executor
    assert executor.wait_idle(30)
    executor.shutdown()
    dispatch.set_executor(None)
    promotion_job.reset()
    engine.dispose()


def test_a_direct_upload_is_promoted_through_the_filters(
    promoting: tuple[sa.Engine, EmbeddedExecutor],
    s3_depot: S3Storage,
    uploads: DirectUploads,
    photo_model: Any,
) -> None:
    slot = uploads.presigned_put(
        photo_model.content, filename="scan.txt", content_type="text/plain"
    )
    put(slot, b"straight from the browser")
    staged = uploads.receive(slot.token).file_id
    engine, executor = promoting
    with Session(engine) as session:
        scan = photo_model(content=slot.token)
        session.add(scan)
        session.commit()
        scan_id = scan.id
        assert scan.content is not None and is_queued(scan.content)
    assert executor.wait_idle(30)
    with Session(engine) as session:
        loaded = session.get(photo_model, scan_id)
        assert loaded is not None
        promoted = loaded.content
    assert promoted.depot_name == "public" and not is_queued(promoted)
    assert read(promoted) == b"straight from the browser"
    assert DepotManager.get_file(promoted["upper_path"]).read() == b"STRAIGHT FROM THE BROWSER"
    assert staged not in keys_under(s3_depot)  # the staged (queued) object went after the swap
    assert keys_under(s3_depot) == set()
