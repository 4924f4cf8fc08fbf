"""The demo's one table: attachments, each either an image (with a thumbnail) or a file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sa_depot.fields.specialized.image import UploadedImageWithThumb
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import utcnow

#: The storage the demo's files go to.
STORAGE_NAME = "demo"


@dataclass(frozen=True)
class Models:
    """The declarative base and the mapped class of one demo application."""

    base: type[DeclarativeBase]
    attachment: type[Any]


def declare_models() -> Models:
    """Declare the demo's mapped classes in a registry of their own.

    Each application gets fresh classes, so that several demo applications (tests) can live in
    one process.
    """

    class Base(DeclarativeBase):
        pass

    class Attachment(Base):
        """An uploaded file. Images go to ``image`` (an UploadedImageWithThumb, which stores a
        thumbnail with the image); anything else goes to ``document``."""

        __tablename__ = "demo_attachments"

        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(255))
        created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
        image: Mapped[UploadedImageWithThumb | None] = mapped_column(
            UploadedFileField(upload_type=UploadedImageWithThumb, upload_storage=STORAGE_NAME)
        )
        document: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(upload_storage=STORAGE_NAME)
        )

        @property
        def upload(self) -> UploadedFile:
            """The stored file, whichever column holds it."""
            value = self.image if self.image is not None else self.document
            if value is None:  # the upload handler never commits such a row
                raise LookupError(f"attachment {self.id} holds no file")
            return value

    return Models(base=Base, attachment=Attachment)


__all__ = ["STORAGE_NAME", "Models", "declare_models"]
