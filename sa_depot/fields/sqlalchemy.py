"""UploadedFileField: the column type holding an :class:`~sa_depot.fields.upload.UploadedFile`.

::

    class Document(Base):
        __tablename__ = "documents"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    doc = Document(content=UploadedFile.of(b"..."))  # or a file, a FileIntent, an upload
    session.add(doc)
    session.commit()  # the file is kept
    doc.content = UploadedFile.of(open("v2.pdf", "rb"))  # the old file goes at the commit
    session.delete(doc)
    session.commit()  # deleted: the files go too

:meth:`UploadedFile.of <sa_depot.fields.upload.UploadedFile.of>` types the content as the
attribute's ``UploadedFile`` for type checkers; code that is not type-checked may assign the
content itself (``doc.content = b"..."``), which stores it the same way.

The descriptor is stored as JSON: ``JSONB`` on PostgreSQL, ``JSON`` on MySQL and MariaDB, and
text elsewhere. Values written by filedepot (JSON text in a ``VARCHAR``/``TEXT`` column) load
as they are.

Creating the type installs the session lifecycle (:mod:`sa_depot.orm`) for the mappers that
use it; importing this module installs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from sa_depot.exceptions import FileDiscarded, UnsupportedContent, WrongUploadType
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.upload import ContentToStore, UploadedFile
from sa_depot.orm.install import watch_mappers

_NATIVE_JSON = {"postgresql", "mysql"}  # MariaDB reports itself as "mysql"


class UploadedFileField(TypeDecorator[UploadedFile]):
    """A column holding an :class:`~sa_depot.fields.upload.UploadedFile` as JSON.

    :param filters: :class:`~sa_depot.fields.interfaces.FileFilter` instances run on every
        file stored through this column (thumbnails...).
    :param upload_type: the UploadedFile subclass built from content and from loaded rows.
    :param upload_storage: the name of the storage new files go to (default: the default
        storage at the time of the assignment).
    """

    impl = sa.Text
    cache_ok = True
    #: Marks the type for the lifecycle (:class:`sa_depot.orm.mapped.FileField`).
    sa_depot_file_field = True

    def __init__(
        self,
        filters: Iterable[FileFilter] = (),
        upload_type: type[UploadedFile] = UploadedFile,
        upload_storage: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.filters = tuple(filters)
        self.upload_type = upload_type
        self.upload_storage = upload_storage
        watch_mappers()

    # -- storing content ---------------------------------------------------------------------
    def upload(self, content: Any) -> UploadedFile:
        """Store ``content`` as this column stores it (storage, type and filters)."""
        return self.upload_type(content, self.upload_storage, filters=self.filters)

    def copy_of(self, uploaded: UploadedFile) -> UploadedFile:
        """Store a copy of the file ``uploaded`` describes (derivatives are made anew)."""
        with uploaded.file as stored:
            return self.upload(stored)

    def from_descriptor(self, value: Mapping[str, Any]) -> UploadedFile:
        """Wrap an existing descriptor (a loaded row's dict) without storing anything."""
        return self.upload_type(value)

    # -- SQL ---------------------------------------------------------------------------------
    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.JSON(none_as_null=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, ContentToStore):
            raise UnsupportedContent(
                "UploadedFile.of(content) is stored by the mapped attribute it is assigned to; "
                "in a Core statement, bind UploadedFile(content), which stores it at once"
            )
        if isinstance(value, UploadedFile):
            if not isinstance(value, self.upload_type):  # as filedepot: refused at flush
                raise WrongUploadType(self.upload_type, type(value))
            record = value.lifecycle
            if record is not None and record.discarded:
                raise FileDiscarded(record.path)
            data: dict[str, Any] = dict(value)
        elif isinstance(value, Mapping):
            data = dict(value)
        else:
            raise UnsupportedContent(
                f"an UploadedFileField column stores UploadedFile descriptors, not "
                f"{type(value).__name__}: assign content to a mapped attribute, or pass "
                "UploadedFile(content) in SQL statements"
            )
        if dialect.name in _NATIVE_JSON:
            return data
        return json.dumps(data)

    def process_result_value(self, value: Any, dialect: Dialect) -> UploadedFile | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8")
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else None
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError(
                f"an UploadedFileField column holds {type(value).__name__} JSON, not an object: "
                "the row was not written by sa_depot or filedepot"
            )
        return self.upload_type(value)

    @property
    def python_type(self) -> type[UploadedFile]:
        return self.upload_type

    def __repr__(self) -> str:
        # Alembic's autogenerate renders the type with repr(): only what a migration needs
        # (filters and upload type do not change the schema) and valid Python.
        if self.upload_storage is None:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(upload_storage={self.upload_storage!r})"


__all__ = ["UploadedFileField"]
