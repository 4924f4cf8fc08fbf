"""UploadedFile: the descriptor an :class:`~sa_depot.fields.sqlalchemy.UploadedFileField`
stores.

Made from content, it stores the content in a storage at once (so that a failing storage
raises at the assignment) and describes it::

    {
        "file_id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
        "path": "default/1b4e28ba-2fa1-41d2-883f-0016d3cca427",
        "depot_name": "default",
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "content_length": 48213,
        "checksum": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "uploaded_at": "2024-05-04 10:21:07",
        "_public_url": null,
        "files": ["default/1b4e28ba-2fa1-41d2-883f-0016d3cca427"]
    }

``files`` lists every stored file the descriptor owns: the original first, then derivatives
(thumbnails...). The lifecycle removes all of them together.

Made from a dict (a loaded row), it stores nothing. Descriptors written by filedepot (no
``depot_name``, ``content_length`` nor ``checksum``) load too: ``depot_name`` is read from
``path`` and ``files`` defaults to ``[path]``.

URLs are never stored: ``_public_url`` (filedepot's key, kept for compatibility) and the
derivatives' ``*_url`` keys are written as ``None``, and :attr:`UploadedFile.url` and attribute
access to ``thumb_<w>x<h>_url``/``thumbnail_url`` compute a fresh URL each time (see
:func:`url_for_path`). A saved URL goes stale: a presigned one expires, and a base URL outlives
a change of CDN, bucket or policy (it would then link unsigned to a now private object).

In a Pydantic model (a FastAPI response, a SQLModel), an UploadedFile serialises as what a
client may see: ``url``, ``filename``, ``content_type``, ``content_length`` and ``checksum``
(:mod:`sa_depot.fields.pydantic_schema`; Pydantic stays optional).

``uploaded_at`` is kept in filedepot's format (``'%Y-%m-%d %H:%M:%S'``, UTC) in the dict; the
:attr:`UploadedFile.uploaded_at` attribute parses it into an aware datetime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from sa_depot import descriptor
from sa_depot.exceptions import ConfigurationError, UnsupportedContent
from sa_depot.fields.interfaces import DepotFileInfo
from sa_depot.io.interfaces import FileInfo, FileStorage, StoredFile, parse_timestamp, utcnow
from sa_depot.manager import DepotManager, remove_paths
from sa_depot.orm.records import UploadRecord

#: filedepot's format of ``uploaded_at``.
UPLOADED_AT_FORMAT = "%Y-%m-%d %H:%M:%S"

_Descriptor = TypeVar("_Descriptor", bound="UploadedFile")


class UploadedFile(DepotFileInfo):
    """A stored file (plus its derivatives), as a column of a row refers to it.

    ``UploadedFile(content, depot_name=None, filters=())`` stores ``content`` (bytes, a binary
    file object, a :class:`~sa_depot.io.utils.FileIntent`, a web framework's upload, a
    :class:`~sa_depot.io.interfaces.StoredFile`) in the storage ``depot_name`` (default: the
    default storage). ``UploadedFile(mapping)`` wraps an existing descriptor without storing
    anything.

    Assign it, or the content directly, to an ``UploadedFileField`` attribute. One stored
    file belongs to one row: assigning a descriptor that another row holds stores a copy
    (see docs/orm.md). With a typed model (``Mapped[UploadedFile | None]``), assign
    :meth:`UploadedFile.of` ``(content)`` so that the assignment type-checks.
    """

    __slots__ = ()

    @classmethod
    def of(
        cls: type[_Descriptor],
        content: Any,
        filename: str | None = None,
        content_type: str | None = None,
        *,
        key_values: Mapping[str, object] | None = None,
    ) -> _Descriptor:
        """``content`` (bytes, a binary file object, a :class:`~sa_depot.io.utils.FileIntent`,
        a web framework's upload, a stored file), typed as this class, for assignment::

            doc.content = UploadedFile.of(b"new content")
            doc.content = UploadedFile.of(request.files["upload"])
            doc.content = UploadedFile.of(data, "report.csv", "text/csv")
            photo.avatar = UploadedImageWithThumb.of(image)  # Mapped[UploadedImageWithThumb]

        It stores nothing yet: the attribute it is assigned to stores it as assigning the
        content itself would (the column's storage, upload type and filters), so the assignment
        reads and behaves like ``doc.content = b"new content"`` and passes ``mypy --strict``
        and pyright, which refuse bytes for a ``Mapped[UploadedFile | None]``. ``filename`` and
        ``content_type`` override what the content carries (as a FileIntent would);
        ``key_values`` fill the placeholders of the column's ``key`` template
        (``{'tenant': 'acme'}``).

        Call it on the column's ``upload_type`` or a base class of it: the attribute then holds
        an instance of the class it was called on, as its type says. Assigned to a column
        whose ``upload_type`` is not that class or a subclass, it raises
        :class:`~sa_depot.exceptions.WrongUploadType` and stores nothing. Written anywhere else
        (a Core statement), it raises :class:`~sa_depot.exceptions.UnsupportedContent`: use
        ``UploadedFile(content)`` there.
        """
        # Typed as ``cls``: what the attribute holds once it has stored the content. The
        # object itself only waits for that assignment.
        return cast(
            _Descriptor,
            ContentToStore(content, filename, content_type, upload_type=cls, key_values=key_values),
        )

    # -- building ----------------------------------------------------------------------------
    def process_content(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> None:
        info, path = self._store_file(content, filename, content_type)
        # one update, not a __setitem__ call per key: this runs for every upload
        dict.update(
            self,
            file_id=info.file_id,
            path=path,
            filename=info.filename,
            content_type=info.content_type,
            content_length=info.content_length,
            checksum=info.checksum,
            uploaded_at=utcnow().strftime(UPLOADED_AT_FORMAT),
            _public_url=None,  # computed by ``url`` when read: a stored one would expire
        )

    def store_content(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> tuple[str, str]:
        """Store ``content`` in this descriptor's storage, list it in ``files``, and return
        ``(path, file_id)`` (filedepot's order). Filters store their derivatives with it."""
        info, path = self._store_file(content, filename, content_type)
        return path, info.file_id

    def _store_file(
        self, content: Any, filename: str | None, content_type: str | None
    ) -> tuple[FileInfo, str]:
        info = self.depot.store(content, filename, content_type)  # no read-back needed
        path = descriptor.join_path(self["depot_name"], info.file_id)
        self._files_list().append(path)
        return info, path

    def _files_list(self) -> list[str]:
        files = self.get("files")
        if not isinstance(files, list):
            files = list(files or ())
            self["files"] = files
        return files

    def processed(self) -> None:
        dict.__setitem__(self, "files", tuple(self.get("files") or ()))
        self._record = UploadRecord(self.files)
        self._record.watch(self)

    def abort(self) -> None:
        remove_paths(self.get("files") or ())

    def loaded(self) -> None:
        completed = dict(self)
        descriptor.complete_loaded(completed)
        dict.update(self, completed)

    # -- JSON (filedepot's names) ------------------------------------------------------------
    def encode(self) -> str:
        """The descriptor as JSON text, as a text column stores it."""
        return json.dumps(self)

    @classmethod
    def decode(cls, data: str | bytes) -> UploadedFile:
        """The descriptor encoded by :meth:`encode` (or written by filedepot)."""
        return cls(json.loads(data))

    # -- the descriptor ----------------------------------------------------------------------
    @property
    def file_id(self) -> str:
        return str(self["file_id"])

    @property
    def path(self) -> str:
        """``'storage/file_id'``: how :class:`~sa_depot.manager.DepotManager` finds the file."""
        return str(self["path"])

    @property
    def depot_name(self) -> str:
        return str(self["depot_name"])

    @property
    def filename(self) -> str | None:
        value = self.get("filename")
        return None if value is None else str(value)

    @property
    def content_type(self) -> str:
        return str(self.get("content_type") or "application/octet-stream")

    @property
    def content_length(self) -> int | None:
        """Size in bytes (``None`` for files stored by filedepot)."""
        value = self.get("content_length")
        return None if value is None else int(value)

    @property
    def checksum(self) -> str | None:
        """Hex SHA-256 of the content (``None`` for files stored by filedepot)."""
        value = self.get("checksum")
        return None if value is None else str(value)

    @property
    def uploaded_at(self) -> datetime:
        """When the file was stored, as an aware UTC datetime."""
        return parse_timestamp(self.get("uploaded_at"))

    @property
    def files(self) -> tuple[str, ...]:
        """Every ``'storage/file_id'`` this descriptor owns, derivatives included."""
        return tuple(self.get("files") or ())

    # -- the stored file ---------------------------------------------------------------------
    @property
    def depot(self) -> FileStorage:
        """The storage holding the file."""
        return DepotManager.get(self.depot_name)

    @property
    def file(self) -> StoredFile:
        """The stored file, open for reading: close it (it is a context manager)."""
        return self.depot.get(self.file_id)

    @property
    def url(self) -> str:
        """A URL serving the file, computed afresh at each access (see :func:`url_for_path`):
        the storage's public URL (a newly presigned one, say) if it has one, else the
        middleware's URL. Raises :class:`~sa_depot.exceptions.ConfigurationError` when neither
        exists and the row saved no ``_public_url`` (rows written by filedepot may have)."""
        return url_for_path(self.path, saved=self.get("_public_url"))

    def __getattr__(self, name: str) -> Any:
        # filedepot's derivative keys (``thumb_64x64_url``, ``thumbnail_url``): as attributes,
        # a fresh URL of the sibling ``*_path``; the stored value is None (or an old row's URL).
        if name.endswith("_url") and name in self:
            path = self.get(name[: -len("_url")] + "_path")
            if isinstance(path, str) and "/" in path:
                try:
                    return url_for_path(path, saved=self.get(name))
                except ConfigurationError:  # no middleware (yet), as when it was stored
                    return None
        return super().__getattr__(name)

    # -- Pydantic ----------------------------------------------------------------------------
    @classmethod
    def __get_pydantic_core_schema__(cls, source_type: Any, handler: Any) -> Any:
        """Pydantic v2 validates fields of this type as instances only and serialises them as
        ``{url, filename, content_type, content_length, checksum}``, without the descriptor's
        internal keys (see :mod:`sa_depot.fields.pydantic_schema`, imported only here)."""
        from sa_depot.fields.pydantic_schema import core_schema_for

        return core_schema_for(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> Any:
        from sa_depot.fields.pydantic_schema import json_schema_for

        return json_schema_for(schema, handler)

    @property
    def lifecycle(self) -> UploadRecord | None:
        """The lifecycle record of a file uploaded in this process (``None`` when loaded)."""
        record: UploadRecord | None = self._record
        return record


class ContentToStore(UploadedFile):
    """Content waiting for the ``UploadedFileField`` attribute it is assigned to, which stores
    it (made by :meth:`UploadedFile.of`). It describes no stored file."""

    __slots__ = ("content", "content_type_given", "filename_given", "key_values", "upload_type")

    def __init__(
        self,
        content: Any,
        filename: str | None = None,
        content_type: str | None = None,
        *,
        upload_type: type[UploadedFile] = UploadedFile,
        key_values: Mapping[str, object] | None = None,
    ) -> None:
        dict.__init__(self)
        for name, value in (
            ("_frozen", True),
            ("_record", None),
            ("_original", None),
            ("content", content),
            ("filename_given", filename),
            ("content_type_given", content_type),
            ("upload_type", upload_type),  # the class it was typed as: the column must make one
            ("key_values", dict(key_values or {})),
        ):
            object.__setattr__(self, name, value)

    def as_content(self) -> Any:
        """What to store: the content, in a FileIntent when a filename or type was given."""
        if self.filename_given is None and self.content_type_given is None and not self.key_values:
            return self.content
        from sa_depot.io.utils import FileIntent

        return FileIntent(
            self.content, self.filename_given, self.content_type_given, key_values=self.key_values
        )

    def __repr__(self) -> str:
        return f"<ContentToStore {type(self.content).__name__}>"


def uploaded_files_in(value: object) -> tuple[UploadedFile, ...]:
    """The descriptors a file column's value holds, in order: ``None`` holds none, an
    :class:`UploadedFile` itself, a list (an ``UploadedFileListField``'s value) its items.

    :raises UnsupportedContent: the value, or an item of it, is not an UploadedFile.
    """
    if value is None:
        return ()
    if isinstance(value, UploadedFile):
        return (value,)
    if isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, UploadedFile):
                raise UnsupportedContent(
                    f"a file list holds UploadedFile values, not {type(item).__name__}: "
                    "append the content itself to the list of a row's attribute"
                )
        return tuple(value)
    raise UnsupportedContent(f"a file column holds UploadedFile values, not {type(value).__name__}")


def paths_held(value: object) -> list[str]:
    """Every ``'storage/file_id'`` a file column's value owns (see :func:`uploaded_files_in`),
    derivatives included, each once, in order: the set of files the row holds through it."""
    found: dict[str, None] = {}
    for uploaded in uploaded_files_in(value):
        found.update(dict.fromkeys(uploaded.files))
    return list(found)


def url_for_path(path: str, saved: object = None) -> str:
    """A fresh URL serving ``'storage/file_id'``: the storage's
    :meth:`~sa_depot.io.interfaces.FileStorage.public_url` if it has one (computed without
    I/O), else the middleware's :meth:`~sa_depot.manager.DepotManager.url_for`.

    ``saved``, a URL an old row stored (filedepot saved ``_public_url`` and ``*_url``), is
    the last resort, when no middleware is configured: it may have expired.
    """
    storage_name, file_id = descriptor.split_path(path)
    public = DepotManager.get(storage_name).public_url(file_id)
    if public:
        return public
    try:
        return DepotManager.url_for(path)
    except ConfigurationError:
        if isinstance(saved, str) and saved:
            return saved
        raise


__all__ = [
    "UPLOADED_AT_FORMAT",
    "ContentToStore",
    "UploadedFile",
    "paths_held",
    "uploaded_files_in",
    "url_for_path",
]
