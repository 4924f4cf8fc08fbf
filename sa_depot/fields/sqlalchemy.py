"""The column types holding files: :class:`UploadedFileField` (one
:class:`~sa_depot.fields.upload.UploadedFile`) and :class:`UploadedFileListField` (an ordered
list of them).

::

    class Document(Base):
        __tablename__ = "documents"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
        attachments: Mapped[list[UploadedFile]] = mapped_column(UploadedFileListField())

    doc = Document(content=UploadedFile.of(b"..."))  # or a file, a FileIntent, an upload
    doc.attachments.append(b"...")  # a list changed in place: no reassignment needed
    session.add(doc)
    session.commit()  # the files are kept
    doc.content = UploadedFile.of(open("v2.pdf", "rb"))  # the old file goes at the commit
    del doc.attachments[0]  # removed: its file goes after the commit
    session.delete(doc)
    session.commit()  # deleted: the files go too

:meth:`UploadedFile.of <sa_depot.fields.upload.UploadedFile.of>` types the content as the
attribute's ``UploadedFile`` for type checkers; code that is not type-checked may assign the
content itself (``doc.content = b"..."``), which stores it the same way.

The descriptor (a list of them for a file list) is stored as JSON: ``JSONB`` on PostgreSQL,
``JSON`` on MySQL and MariaDB, and text elsewhere. Values written by filedepot (JSON text in a
``VARCHAR``/``TEXT`` column) load as they are.

Creating the type installs the session lifecycle (:mod:`sa_depot.orm`) for the mappers that
use it; importing this module installs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.base import instance_state
from sqlalchemy.types import TypeDecorator, TypeEngine

from sa_depot.direct.staging import is_upload_token, refuse_unverified, staged_file
from sa_depot.exceptions import (
    ConfigurationError,
    FileDiscarded,
    UnsupportedContent,
    ValidationFailed,
    WrongUploadType,
)
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.lists import UploadedFileList
from sa_depot.fields.upload import ContentToStore, UploadedFile
from sa_depot.io.keys import KeyTemplate, as_key_template, copy_template
from sa_depot.io.utils import KeyedContent, ValidatedContent
from sa_depot.io.validation import Validation, ValidatorLike
from sa_depot.orm import promotions, records
from sa_depot.orm.install import watch_mappers
from sa_depot.promotion.embedded import EmbeddedExecutor
from sa_depot.promotion.job import QueuedForPromotion, run

_T = TypeVar("_T")

_NATIVE_JSON = {"postgresql", "mysql"}  # MariaDB reports itself as "mysql"


class FileColumn(TypeDecorator[_T]):
    """What the column types holding files share: where and how new files are stored
    (storage, upload type, validators, filters), and their JSON.

    :param filters: :class:`~sa_depot.fields.interfaces.FileFilter` instances run on every
        file stored through this column (thumbnails...).
    :param upload_type: the UploadedFile subclass built from content and from loaded rows.
    :param upload_storage: the name of the storage new files go to (default: the default
        storage at the time of the assignment).
    :param validators: rules every new file must follow, checked while its content streams
        in (:mod:`sa_depot.io.validation`): ``[MaxSize(10 * MiB), ContentTypes('image/*'),
        Extensions('.png', '.jpg'), ImageDimensions(max_pixels=...), my_function]``. Content
        that breaks one raises :class:`~sa_depot.exceptions.ValidationFailed` at the
        assignment and is not stored.
    :param key: name new files by this template (``'{tenant}/{yyyy}/{mm}/{id}{ext}'``, see
        :mod:`sa_depot.io.keys`) rather than by the storage's naming; the application passes
        its values with ``UploadedFile.of(content, key_values={'tenant': 'acme'})`` or a
        ``FileIntent(..., key_values=...)``. A malformed template raises
        :class:`~sa_depot.exceptions.InvalidKey` here; a missing value, at the assignment.
    :param promote_to: a storage name: new content is stored in ``upload_storage`` (the
        *queue*: private and fast, typically local disk) and marked queued; after the commit
        a promotion runs ``filters`` on it and moves the result to this storage
        (:mod:`sa_depot.promotion`, docs/promotion.md). Single-file columns only.
    """

    #: Whether the column may take ``promote_to``.
    promotable = True

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
        validators: Iterable[ValidatorLike] = (),
        key: KeyTemplate | str | None = None,
        promote_to: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.key = as_key_template(key)
        self.filters = tuple(filters)
        self.upload_type = upload_type
        self.upload_storage = upload_storage
        self.validators = tuple(validators)
        self.validation = Validation(self.validators)
        self.promote_to = promote_to
        if promote_to is not None:
            if not self.promotable:
                raise ConfigurationError(
                    f"{type(self).__name__} cannot take promote_to: promote single files "
                    "(UploadedFileField)"
                )
            promotions.use_default(lambda: EmbeddedExecutor(run))
        watch_mappers()

    # -- storing content ---------------------------------------------------------------------
    def upload(self, content: Any) -> UploadedFile:
        """Store ``content`` as this column stores it (storage, type, validators and filters).

        :raises ValidationFailed: the content broke a validator; nothing was stored.
        """
        if self.key is not None and not isinstance(content, KeyedContent):
            content = KeyedContent(content, self.key)
        filters = self.filters
        if self.promote_to is not None:  # the filters run at the promotion
            filters = (QueuedForPromotion(self.promote_to),)
        if not self.validation:
            return self.upload_type(content, self.upload_storage, filters=filters)
        checked = ValidatedContent(content, self.validation)
        uploaded = self.upload_type(checked, self.upload_storage, filters=filters)
        self.validation.mark_passed(uploaded.lifecycle)
        return uploaded

    def promoted_copy(self, queued: UploadedFile) -> UploadedFile:
        """Store the queued file ``queued`` describes in ``promote_to``, streamed through
        this column's filters (its derivatives made there too): the promoted descriptor, a
        fresh upload that the promotion writes into the row. The validators passed when the
        file was queued.

        :raises ConfigurationError: the column has no ``promote_to``.
        """
        if self.promote_to is None:
            raise ConfigurationError(f"{self!r} has no promote_to: nothing to promote to")
        with queued.file as stored:
            content: Any = stored
            if self.key is not None:  # the public file keeps the queued file's key shape
                content = KeyedContent(stored, copy_template(self.key, stored.file_id))
            promoted = self.upload_type(content, self.promote_to, filters=self.filters)
        if self.validation:
            self.validation.mark_passed(promoted.lifecycle)
        return promoted

    def coerce_item(self, value: Any) -> UploadedFile:
        """The UploadedFile that assigning ``value`` stores (for a file list: that adding it
        stores): content (bytes, a file, an upload, a FileIntent, ``UploadedFile.of(content)``)
        is stored and validated (:meth:`upload`); a fresh ``UploadedFile(content)`` made
        elsewhere is validated (:meth:`accept`); a descriptor dict is wrapped; a direct
        upload's token names its staged object, which the flush verifies
        (:mod:`sa_depot.direct`).

        :raises FileDiscarded: ``value`` describes files removed with their transaction.
        :raises ValidationFailed: the content broke a validator; nothing was stored.
        """
        if isinstance(value, ContentToStore):  # UploadedFile.of(content): store it now
            if not issubclass(self.upload_type, value.upload_type):
                # the type checker was told the attribute holds a value.upload_type
                raise WrongUploadType(
                    self.upload_type,
                    value.upload_type,
                    advice=f"assign {self.upload_type.__name__}.of(content)",
                )
            return self.upload(value.as_content())
        if isinstance(value, UploadedFile):
            record = value.lifecycle
            if record is not None and record.discarded:
                raise FileDiscarded(record.path)
            self.accept(value)
            return value
        if isinstance(value, dict):
            return self.from_descriptor(value)
        if is_upload_token(value):  # a direct upload: the flush verifies its staged object
            return staged_file(self, value)
        return self.upload(value)

    def coerce_items(self, values: Iterable[Any]) -> list[UploadedFile]:
        """:meth:`coerce_item` of each value; if one fails, the files stored for the others
        are removed before the exception propagates."""
        given = list(values)
        items: list[UploadedFile] = []
        try:
            for value in given:
                items.append(self.coerce_item(value))
        except BaseException:
            for item, value in zip(items, given, strict=False):
                if item is not value and item.lifecycle is not None:  # stored here
                    records.discard(item.lifecycle)
            raise
        return items

    def accept(self, uploaded: UploadedFile) -> None:
        """Check a fresh upload this column did not store (``UploadedFile(content)`` made
        elsewhere) against the validators, from its stored head and recorded length; one that
        fails is removed. Descriptors of stored files (loaded from rows) are not fresh: a row
        that takes one stores a copy, which :meth:`upload` checks.

        :raises ValidationFailed: the file broke a validator; it was removed.
        """
        record = uploaded.lifecycle
        refuse_unverified(record)  # a direct upload: only a flush of its row attaches it
        if not self.validation or record is None or self.validation.has_passed(record):
            return
        if record.state is not records.UploadState.PENDING:
            return
        try:
            with uploaded.file as stored:
                self.validation.check_stored(stored, uploaded.content_length)
        except ValidationFailed:
            records.discard(record)
            raise
        self.validation.mark_passed(record)

    def copy_of(self, uploaded: UploadedFile) -> UploadedFile:
        """Store a copy of the file ``uploaded`` describes (derivatives are made anew)."""
        with uploaded.file as stored:
            if self.key is None:
                return self.upload(stored)
            return self.upload(KeyedContent(stored, copy_template(self.key, stored.file_id)))

    def from_descriptor(self, value: Mapping[str, Any]) -> UploadedFile:
        """Wrap an existing descriptor (a loaded row's dict) without storing anything."""
        return self.upload_type(value)

    def instrument(self, attribute: InstrumentedAttribute[Any]) -> list[tuple[Any, str, Any]]:
        """Install what the mapped ``attribute`` of this column needs beyond the lifecycle's
        own listeners; return the ``(target, event, listener)`` to remove on uninstall."""
        return []

    # -- SQL ---------------------------------------------------------------------------------
    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.JSON(none_as_null=True))
        return dialect.type_descriptor(sa.Text())

    def _bind_item(self, value: Any) -> dict[str, Any]:
        """The JSON object one stored descriptor is written as."""
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
            self.accept(value)  # a fresh upload written by a Core statement
            return dict(value)
        if isinstance(value, Mapping):
            return dict(value)
        raise UnsupportedContent(
            f"an {type(self).__name__} column stores UploadedFile descriptors, not "
            f"{type(value).__name__}: assign content to a mapped attribute, or pass "
            "UploadedFile(content) in SQL statements"
        )

    @staticmethod
    def _to_json(data: Any, dialect: Dialect) -> Any:
        return data if dialect.name in _NATIVE_JSON else json.dumps(data)

    @staticmethod
    def _from_json(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8")
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else None
        return value

    def __repr__(self) -> str:
        # Alembic's autogenerate renders the type with repr(): only what a migration needs
        # (filters, upload type and validators do not change the schema) and valid Python.
        given = (("upload_storage", self.upload_storage), ("promote_to", self.promote_to))
        options = [f"{name}={value!r}" for name, value in given if value is not None]
        return f"{type(self).__name__}({', '.join(options)})"


class UploadedFileField(FileColumn[UploadedFile]):
    """A column holding an :class:`~sa_depot.fields.upload.UploadedFile` as JSON (see
    :class:`FileColumn` for the options)."""

    cache_ok = True

    def coerce(self, value: Any) -> UploadedFile:
        """What assigning ``value`` to an attribute of this column stores
        (:meth:`~FileColumn.coerce_item`)."""
        return self.coerce_item(value)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self._to_json(self._bind_item(value), dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> UploadedFile | None:
        value = self._from_json(value)
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


class UploadedFileListField(FileColumn[list[UploadedFile]]):
    """A column holding an ordered list of files, as a JSON array of descriptors; its value
    is an :class:`~sa_depot.fields.lists.UploadedFileList`, changed in place
    (``doc.attachments.append(content)``, ``del doc.attachments[0]``, ``.sort(...)``...),
    each change tracked without reassignment (see :class:`FileColumn` for the options, which
    apply to every item).

    Each file lives and dies with its row and its place in the list, as a single file does:
    files added in a transaction that rolls back (or a SAVEPOINT) are removed, files removed
    from the list go once the transaction commits, and an item another row holds is stored
    again as a copy. An item may stand at several places of one list: its file stays while
    one place holds it.

    A new row starts with an empty list, and ``None`` is written as one; a ``NULL`` column
    reads as an empty list, and a column holding one descriptor (a single file column turned
    into a list) as a list of that one.
    """

    cache_ok = True
    promotable = False

    def coerce(self, value: Any) -> UploadedFileList:
        """The list that assigning ``value`` (a list of content, UploadedFiles or descriptor
        dicts) to an attribute of this column holds, its items stored and validated."""
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise UnsupportedContent(
                f"an UploadedFileListField attribute holds a list of files, not "
                f"{type(value).__name__}: assign [content, ...] or append to the list"
            )
        items = self.coerce_items(list(value))
        if isinstance(value, UploadedFileList) and not value._parents:
            list.__setitem__(value, slice(None), items)  # a list of nobody's: it is the value
            return value
        return UploadedFileList(items)  # a list is one row's: another row's gives a new one

    def instrument(self, attribute: InstrumentedAttribute[Any]) -> list[tuple[Any, str, Any]]:
        """Track changes made in place (SQLAlchemy's ``ext.mutable``, once per attribute), and
        give a new row an empty list at its first access."""
        info = attribute.parent.class_manager.info
        tracked = info.setdefault("sa_depot.mutable", set())
        if attribute.key not in tracked:
            UploadedFileList.associate_with_attribute(attribute)
            tracked.add(attribute.key)
        key = attribute.key

        def init_scalar(target: object, value: Any, dict_: dict[str, Any]) -> UploadedFileList:
            files = UploadedFileList()
            dict_[key] = files
            files._parents[instance_state(target)] = key
            return files

        listener: Callable[..., Any] = init_scalar
        event.listen(attribute, "init_scalar", listener, retval=True)
        return [(attribute, "init_scalar", listener)]

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:  # no files: a list still, so that NOT NULL columns take it
            return self._to_json([], dialect)
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise UnsupportedContent(
                f"an UploadedFileListField column stores a list of UploadedFile descriptors, "
                f"not {type(value).__name__}"
            )
        return self._to_json([self._bind_item(item) for item in value], dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> UploadedFileList:
        value = self._from_json(value)
        if value is None:
            return UploadedFileList()
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise ValueError(
                f"an UploadedFileListField column holds {type(value).__name__} JSON, not an "
                "array of descriptors: the row was not written by sa_depot"
            )
        return UploadedFileList(self.upload_type(item) for item in value)

    @property
    def python_type(self) -> type[list[UploadedFile]]:
        return list


__all__ = ["FileColumn", "UploadedFileField", "UploadedFileListField"]
