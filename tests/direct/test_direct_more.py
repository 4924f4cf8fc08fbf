"""Direct uploads on SQLite, PostgreSQL and MariaDB (the flush's registry lookups in the
flush's transaction), in file lists, through Uppy's endpoints, and kept away from statements
that would write them unverified."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.direct import DirectUploads
from sa_depot.direct.companion import CompanionEndpoints
from sa_depot.exceptions import UnsupportedContent, UploadRefused
from sa_depot.fields.sqlalchemy import UploadedFileListField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.boto3 import S3Storage
from tests.direct.conftest import Base, Document, keys_under, multipart_uploads, put, read
from tests.s3.conftest import MiB


class Gallery(Base):
    __tablename__ = "direct_galleries"
    id: Mapped[int] = mapped_column(primary_key=True)
    photos: Mapped[list[UploadedFile]] = mapped_column(UploadedFileListField())


@pytest.fixture
def any_engine(db_url: str, s3_depot: S3Storage) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        for table in reversed(schema.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


def test_attach_replay_and_rollback_on_each_database(
    any_engine: sa.Engine, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"on every database")
    with Session(any_engine) as session:
        doc = Document(content=slot.token)
        session.add(doc)
        session.commit()
        doc_id = doc.id
    with Session(any_engine) as session:
        session.add(Document(content=slot.token))
        with pytest.raises(UploadRefused) as refused:
            session.flush()
        assert refused.value.reason == "replayed"
    other = uploads.presigned_put(Document.content, content_type="text/plain")
    put(other, b"rolled back")
    with Session(any_engine) as session:
        loaded = session.get(Document, doc_id)
        assert loaded is not None
        loaded.content = other.token  # a replacement, rolled back
        session.flush()
        session.rollback()
        content = loaded.content
        assert content is not None and read(content) == b"on every database"
    # the rolled-back replacement stays staged for its token, until the collector's grace ends
    assert keys_under(s3_depot) == {
        uploads.receive(slot.token).file_id,
        uploads.receive(other.token).file_id,
    }


def test_tokens_added_to_a_file_list(
    session: Session, engine: sa.Engine, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    Gallery.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    slots = [uploads.presigned_put(Gallery.photos, content_type="text/plain") for _ in range(2)]
    for number, slot in enumerate(slots):
        put(slot, f"photo {number}".encode())
    gallery = Gallery()
    gallery.photos.append(slots[0].token)  # type: ignore[arg-type]
    gallery.photos.append(uploads.attachment(slots[1].token))
    session.add(gallery)
    session.commit()
    assert [read(p) for p in gallery.photos] == [b"photo 0", b"photo 1"]
    del gallery.photos[0]
    session.commit()
    assert keys_under(s3_depot) == {gallery.photos[0].file_id}


def test_a_statement_cannot_write_an_unverified_upload(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"unverified")
    holder = Document(content=slot.token)  # never flushed: its value is not verified
    staged = holder.content
    assert staged is not None
    with pytest.raises(UnsupportedContent):
        session.execute(sa.insert(Document).values(content=staged))
    session.rollback()
    table = Document.__table__
    with pytest.raises(sa.exc.StatementError, match="a statement cannot write it") as core:
        session.execute(sa.insert(table).values(content=staged))  # type: ignore[arg-type]
    assert isinstance(core.value.orig, UnsupportedContent)
    session.rollback()


def test_uppy_endpoints(session: Session, s3_depot: S3Storage, uploads: DirectUploads) -> None:
    endpoints = CompanionEndpoints(uploads, Document.content)
    status, created = endpoints.handle(
        "POST", "s3/multipart", {}, {"filename": "movie.mp4", "type": "video/mp4"}
    )
    assert status == 200 and set(created) == {"uploadId", "key"}
    upload_id, key = created["uploadId"], created["key"]
    body = b"m" * (5 * MiB) + b"end"
    parts = []
    for number, chunk in ((1, body[: 5 * MiB]), (2, body[5 * MiB :])):
        status, signed = endpoints.handle("GET", f"s3/multipart/{upload_id}/{number}", {"key": key})
        assert status == 200
        answer = requests.put(signed["url"], data=chunk, timeout=30)
        parts.append({"PartNumber": number, "ETag": answer.headers["ETag"]})
    status, batch = endpoints.handle(
        "GET", f"s3/multipart/{upload_id}/batch", {"key": key, "partNumbers": "1,2"}
    )
    assert status == 200 and set(batch["presignedUrls"]) == {"1", "2"}
    status, listed = endpoints.handle("GET", f"s3/multipart/{upload_id}", {"key": key})
    assert status == 200 and [p["PartNumber"] for p in listed] == [1, 2]
    status, done = endpoints.handle(
        "POST", f"s3/multipart/{upload_id}/complete", {"key": key}, {"parts": parts}
    )
    assert status == 200 and done["token"] == key
    doc = Document(content=done["token"])
    session.add(doc)
    session.commit()
    assert doc.content is not None and read(doc.content) == body
    assert doc.content.filename == "movie.mp4" and doc.content.content_type == "video/mp4"

    # refusals: a forged key, another upload's id, an unknown route, a malformed body
    status, error = endpoints.handle("GET", f"s3/multipart/{upload_id}", {"key": key + "x"})
    assert status == 403 and error["error"] == "forged"
    status, other = endpoints.handle("POST", "s3/multipart", {}, {"filename": "b.bin"})
    status, error = endpoints.handle("GET", f"s3/multipart/{other['uploadId']}/1", {"key": key})
    assert status == 403 and error["error"] == "other field"
    assert endpoints.handle("GET", "s3/nothing", {})[0] == 400
    assert endpoints.handle("POST", f"s3/multipart/{upload_id}/complete", {"key": key})[0] == 400
    # abort removes the parts
    status, _ = endpoints.handle(
        "DELETE", f"s3/multipart/{other['uploadId']}", {"key": other["key"]}
    )
    assert status == 200 and multipart_uploads(s3_depot) == []
    # a presigned POST, as Uppy's non-multipart uploads ask
    status, params = endpoints.handle(
        "GET", "s3/params", {"filename": "a.txt", "type": "text/plain"}
    )
    assert status == 200 and params["method"] == "POST" and params["token"]
    assert set(params) >= {"url", "fields", "headers"}


def test_an_async_session_verifies_off_the_event_loop(
    tmp_path: Path, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"async")

    async def attach() -> UploadedFile | None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.sqlite'}")
        async with engine.begin() as connection:
            await connection.run_sync(schema.metadata.create_all)
            await connection.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            doc = Document(content=slot.token)
            session.add(doc)
            await session.commit()
            content = doc.content
            session.add(Document(content=slot.token))
            with pytest.raises(UploadRefused):
                await session.flush()
            await session.rollback()
        await engine.dispose()
        return content

    content = asyncio.run(attach())
    assert content is not None and read(content) == b"async"
