"""The demo's one table: attachments, each either an image (with a thumbnail) or a file.

``Base`` and ``Attachment`` are declared on first access (declaring an UploadedFileField
installs sa_depot's session hooks, which importing a module must not do), so that the
collector can be pointed at the demo's tables::

    sa-depot gc --database-url sqlite:///.sa_depot_demo/demo.sqlite \\
                --metadata sa_depot.demo.models:Base.metadata
"""

from __future__ import annotations

import functools
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


@functools.cache
def demo_models() -> Models:
    """The demo's tables, declared once per process, for ``sa_depot.demo.models:Base``
    (``sa-depot gc --metadata sa_depot.demo.models:Base.metadata``): the same tables as every
    application's."""
    return declare_models()


def __getattr__(name: str) -> Any:
    """``Base`` and ``Attachment``, declared on first access (see the module docs)."""
    if name == "Base":
        return demo_models().base
    if name == "Attachment":
        return demo_models().attachment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["STORAGE_NAME", "Models", "declare_models", "demo_models"]
