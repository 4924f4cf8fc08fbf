"""Derivatives: thumbnails live and die with their original (point 3 of issue #3)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot.exceptions import ConfigurationError, StorageError, UnsupportedContent
from sa_depot.fields.filters.thumbnails import WithThumbnailFilter
from sa_depot.fields.specialized.image import UploadedImageWithThumb
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager
from tests.orm.conftest import STORAGE_CONFIGS, STORAGE_KIND, Depot, unique
from tests.orm.flaky import FlakyStorage

Image = pytest.importorskip("PIL.Image")


def png(width: int = 400, height: int = 300, mode: str = "RGB") -> bytes:
    output = io.BytesIO()
    Image.new(mode, (width, height), "red").save(output, "PNG")
    return output.getvalue()


def image_size(depot: Depot, path: str) -> tuple[int, int]:
    with DepotManager.get_file(path) as stored, Image.open(io.BytesIO(stored.read())) as image:
        return tuple(image.size)  # type: ignore[return-value]


class SmallJpegThumb(UploadedImageWithThumb):
    thumbnail_size = (32, 32)
    thumbnail_format = "JPEG"


@pytest.fixture
def Photo(engine: sa.Engine, depot: Depot) -> Iterator[Any]:
    class Base(DeclarativeBase):
        pass

    class Photo(Base):
        __tablename__ = unique("photos")
        id: Mapped[int] = mapped_column(primary_key=True)
        picture: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(filters=[WithThumbnailFilter((64, 64), "PNG")])
        )
        avatar: Mapped[UploadedImageWithThumb | None] = mapped_column(
            UploadedFileField(upload_type=SmallJpegThumb)
        )

    Base.metadata.create_all(engine)
    yield Photo
    Base.metadata.drop_all(engine)
    Base.registry.dispose()


def test_thumbnails_are_rolled_back_replaced_and_deleted_with_their_original(
    engine: sa.Engine, Photo: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        photo = Photo(picture=png(), avatar=png(mode="RGBA"))
        session.add(photo)
        session.flush()
        assert len(depot.stored()) == 4
        session.rollback()
        assert depot.stored() == set()

        photo = Photo(picture=png(), avatar=png(mode="RGBA"))
        session.add(photo)
        session.commit()
        picture, avatar = photo.picture, photo.avatar
        assert picture["thumb_64x64_path"] in picture.files
        assert picture["thumb_64x64_id"] == picture["thumb_64x64_path"].split("/")[1]
        assert picture["thumb_64x64_url"] is None  # no middleware configured
        assert image_size(depot, picture["thumb_64x64_path"]) == (64, 48)
        assert isinstance(avatar, SmallJpegThumb)
        assert avatar["thumb_path"] in avatar.files
        assert image_size(depot, avatar["thumb_path"]) == (32, 24)
        with avatar.thumb_file as thumb:
            assert thumb.content_type == "image/jpeg"
        assert depot.stored() == set(picture.files) | set(avatar.files)

        session.expire_all()
        photo.picture = png(100, 100)
        session.commit()
        assert depot.stored() == set(photo.picture.files) | set(avatar.files)

        session.delete(photo)
        session.commit()
    assert depot.stored() == set()


def test_content_that_is_not_an_image_is_refused_and_nothing_stays(depot: Depot) -> None:
    field = UploadedFileField(filters=[WithThumbnailFilter()])
    with pytest.raises(UnsupportedContent, match="not an image"):
        field.upload(FileIntent(b"plain text", "notes.txt", "text/plain"))
    with pytest.raises(UnsupportedContent, match="not an image"):
        UploadedImageWithThumb(b"plain text")
    assert depot.stored() == set()


def test_a_failing_thumbnail_write_removes_the_original(depot: Depot, tmp_path: Path) -> None:
    flaky = DepotManager.configure("flaky", {"depot.backend": "tests.orm.flaky.FlakyStorage"})
    assert isinstance(flaky, FlakyStorage)
    flaky.inner = DepotManager.from_config(STORAGE_CONFIGS[STORAGE_KIND](tmp_path / "inner"))
    flaky.fail_writes_after = 1  # the original is written, its thumbnail fails
    with pytest.raises(StorageError, match="injected"):
        UploadedImageWithThumb(png(), "flaky")
    assert flaky.list() == []


def test_a_missing_pillow_is_named(depot: Depot, monkeypatch: pytest.MonkeyPatch) -> None:
    image = png()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'sa-depot\[image\]'"):
        UploadedFileField(filters=[WithThumbnailFilter()]).upload(image)
    assert depot.stored() == set()


def test_thumbnail_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WithThumbnailFilter((0, 10))
