"""``UploadedFile.of(content)``: content typed as an UploadedFile, stored by the attribute it is
assigned to exactly as the content itself would be (the column's storage, upload type and
filters), so that typed models (``Mapped[UploadedFile | None]``) assign content and pass
``mypy --strict``."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.datastructures import Headers
from starlette.datastructures import UploadFile as StarletteUpload
from werkzeug.datastructures import FileStorage as WerkzeugUpload

from sa_depot.exceptions import UnsupportedContent, WrongUploadType
from sa_depot.fields.specialized.image import UploadedImageWithThumb
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from tests.orm.conftest import Depot, Models, unique

DATA = b"%PDF-1.7 typed content"

#: name -> (content for UploadedFile.of, expected filename, expected content type)
INPUTS: dict[str, tuple[Callable[[Path], Any], str, str]] = {
    "bytes": (lambda tmp: DATA, "unnamed", "application/pdf"),
    "file": (lambda tmp: open(_file(tmp), "rb"), "typed.pdf", "application/pdf"),  # noqa: SIM115
    "FileIntent": (
        lambda tmp: FileIntent(io.BytesIO(DATA), "intent.bin", "application/x-intent"),
        "intent.bin",
        "application/x-intent",
    ),
    "werkzeug": (
        lambda tmp: WerkzeugUpload(
            io.BytesIO(DATA), "werkzeug.pdf", content_type="application/pdf"
        ),
        "werkzeug.pdf",
        "application/pdf",
    ),
    "starlette": (
        lambda tmp: StarletteUpload(
            io.BytesIO(DATA),
            filename="starlette.pdf",
            headers=Headers({"content-type": "application/pdf"}),
        ),
        "starlette.pdf",
        "application/pdf",
    ),
}


def _file(tmp: Path) -> Path:
    path = tmp / "typed.pdf"
    path.write_bytes(DATA)
    return path


@pytest.mark.parametrize("kind", INPUTS)
def test_assigning_of_stores_as_the_content_itself_would(
    engine: sa.Engine, models: Models, depot: Depot, kind: str, tmp_path: Path
) -> None:
    build, filename, content_type = INPUTS[kind]
    with Session(engine) as session:
        doc = models.Document(name=kind, content=b"first")
        session.add(doc)
        session.commit()
        first = doc.content
        doc.content = UploadedFile.of(build(tmp_path))
        assert type(doc.content) is UploadedFile and doc.content.path  # stored at once
        session.commit()
        assert first is not None and first.path not in depot.stored()
        assert doc.content.filename == filename
        assert doc.content.content_type == content_type
        assert depot.read(doc.content) == DATA
        assert depot.stored() == set(doc.content.files)


def test_of_names_and_types_like_a_file_intent(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="named", content=UploadedFile.of(DATA, "r.csv", "text/csv"))
        session.add(doc)
        session.commit()
        assert doc.content is not None
        assert (doc.content.filename, doc.content.content_type) == ("r.csv", "text/csv")


def test_an_assignment_rolled_back_removes_its_file(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="rolled", content=b"kept")
        session.add(doc)
        session.commit()
        before = depot.stored()
        doc.content = UploadedFile.of(b"rolled back")
        session.flush()
        session.rollback()
    assert depot.stored() == before


def test_outside_an_attribute_it_is_refused_and_stores_nothing(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    table = models.Document.__table__
    with engine.begin() as conn, pytest.raises(sa.exc.StatementError) as raised:
        conn.execute(table.insert().values(name="core", content=UploadedFile.of(b"x")))
    assert isinstance(raised.value.orig, UnsupportedContent)
    assert "bind UploadedFile(content)" in str(raised.value.orig)
    with Session(engine) as session, pytest.raises(UnsupportedContent, match="UploadedFile"):
        session.execute(sa.update(models.Document).values(content=UploadedFile.of(b"x")))
    assert depot.stored() == set()


def _png() -> bytes:
    output = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(output, "PNG")
    return output.getvalue()


@pytest.fixture
def Avatar(engine: sa.Engine, depot: Depot) -> Iterator[Any]:
    class Base(DeclarativeBase):
        pass

    class Avatar(Base):
        __tablename__ = unique("avatars")
        id: Mapped[int] = mapped_column(primary_key=True)
        image: Mapped[UploadedImageWithThumb | None] = mapped_column(
            UploadedFileField(upload_type=UploadedImageWithThumb)
        )

    Base.metadata.create_all(engine)
    yield Avatar
    Base.metadata.drop_all(engine)
    Base.registry.dispose()


@pytest.mark.parametrize("typed_as", [UploadedImageWithThumb, UploadedFile])
def test_of_called_on_the_column_type_or_a_base_stores_the_column_type(
    engine: sa.Engine, Avatar: Any, depot: Depot, typed_as: type[UploadedFile]
) -> None:
    with Session(engine) as session:
        avatar = Avatar()
        avatar.image = typed_as.of(_png(), "face.png")
        session.add(avatar)
        session.commit()
        image = avatar.image
        assert isinstance(image, UploadedImageWithThumb)  # what the type checker was told
        assert image.filename == "face.png" and image["thumb_path"] in image.files
        assert depot.stored() == set(image.files)


def test_of_called_on_a_type_the_column_does_not_make_is_refused_before_storing(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="plain", content=b"kept")
        session.add(doc)
        session.commit()
        kept = doc.content
        # the type checker would believe doc.content is an UploadedImageWithThumb
        with pytest.raises(WrongUploadType, match=r"assign UploadedFile\.of\(content\)"):
            doc.content = UploadedImageWithThumb.of(_png())
        assert doc.content is kept
        session.commit()
    assert kept is not None and depot.stored() == set(kept.files)
