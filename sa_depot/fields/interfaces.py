"""The two extension points of the ORM layer: :class:`DepotFileInfo` and :class:`FileFilter`.

:class:`DepotFileInfo` is the descriptor stored in a column: a dict (so that it serialises to
JSON as is, and code written for filedepot that treats it as a dict keeps working) that is
**immutable** once built. Changing a file means assigning a new value to the attribute, which
is the only change SQLAlchemy needs to track.

While it is being built (in :meth:`DepotFileInfo.process_content` and in the
:meth:`FileFilter.on_save` of the column's filters) it is writable, by key or by attribute
(``f["key"] = v``, ``f.key = v``, ``del f.key``), so that filters written for filedepot keep
working; after that every way of changing it raises ``TypeError``, as in filedepot.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from sa_depot.io.interfaces import StoredFile
from sa_depot.manager import DepotManager

_set_slot = object.__setattr__


class DepotFileInfo(dict[str, Any]):
    """An immutable dict describing stored files, readable as attributes (``info.file_id``).

    Subclasses fill it in :meth:`process_content`; :class:`~sa_depot.fields.upload.UploadedFile`
    is the one sa_depot uses.
    """

    __slots__ = ("__weakref__", "_frozen", "_original", "_record")

    def __init__(
        self,
        content: Any = None,
        depot_name: str | None = None,
        *,
        filters: Iterable[FileFilter] = (),
    ) -> None:
        super().__init__()
        # The slots are set past __setattr__ (which only passes them on to object's), here
        # and below: every upload and every loaded row builds a descriptor.
        _set_slot(self, "_frozen", False)
        _set_slot(self, "_record", None)
        _set_slot(self, "_original", None)
        if isinstance(content, Mapping):
            dict.update(self, content)
            self.loaded()
        else:
            # An alias is recorded as the storage it stands for now (as filedepot does), so
            # that re-pointing the alias later sends new files elsewhere and keeps old rows
            # readable. An unknown name raises StorageNotFound, a ValueError as filedepot's.
            name = depot_name or DepotManager.get_default()
            DepotManager.get(name)
            dict.__setitem__(self, "depot_name", DepotManager.resolve_alias(name))
            _set_slot(self, "_original", content)
            try:
                self.process_content(content)
                for file_filter in filters:
                    file_filter.on_save(self)
            except BaseException:
                self.abort()
                raise
            finally:
                _set_slot(self, "_original", None)  # the upload may be large: let it go
            self.processed()
        _set_slot(self, "_frozen", True)

    def process_content(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> None:
        """Store ``content`` in the storage named by ``self['depot_name']`` and fill in the
        descriptor (which is writable here)."""
        raise NotImplementedError

    def store_content(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> tuple[str, str]:
        """Store ``content`` (a derivative, during :meth:`process_content` or a filter's
        :meth:`FileFilter.on_save`) as one more file this descriptor owns; return
        ``(path, file_id)``, as filedepot's ``UploadedFile.store_content`` does."""
        raise NotImplementedError

    @property
    def file(self) -> StoredFile:
        """The stored file, open for reading: close it (it is a context manager)."""
        raise NotImplementedError

    @property
    def original_content(self) -> Any:
        """The content being stored, while :meth:`process_content` and the filters run
        (filedepot's attribute); ``None`` afterwards and for descriptors loaded from a row.

        filedepot's filters read it with ``depot.io.utils.file_from_content``, which rewinds
        it. A stream that cannot seek has been read into the storage by then: read the stored
        file, ``uploaded_file.file``, which works for every kind of content.
        """
        return self._original

    def loaded(self) -> None:
        """Called after the descriptor was built from a dict (a row, or a copy)."""

    def processed(self) -> None:
        """Called once content and filters have been stored, before the descriptor freezes."""

    def abort(self) -> None:
        """Undo what :meth:`process_content` and the filters stored (they raised)."""

    # -- read access -------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute or key {name!r}"
            ) from None

    # -- immutability ------------------------------------------------------------------------
    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} is immutable: assign a new value to the attribute to change "
            "the file (obj.attachment = new_content), or None to remove it"
        )

    def __setitem__(self, key: str, value: Any) -> None:
        if self._frozen:
            self._refuse()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        if self._frozen:
            self._refuse()
        dict.__delitem__(self, key)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DepotFileInfo.__slots__:
            object.__setattr__(self, name, value)
        elif self._frozen:
            self._refuse()
        else:  # filedepot's filters set keys as attributes: uploaded_file.thumb_id = ...
            dict.__setitem__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._frozen:
            self._refuse()
        try:
            dict.__delitem__(self, name)
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute or key {name!r}"
            ) from None

    def update(self, *args: Any, **kwargs: Any) -> None:
        if self._frozen:
            self._refuse()
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse

    # -- copies ------------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        # A copy or an unpickled descriptor is a plain reference to the stored files: it does
        # not carry the lifecycle state of the original (see sa_depot.fields.ownership).
        return (type(self), (dict(self),))

    def __copy__(self) -> DepotFileInfo:
        return type(self)(dict(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> DepotFileInfo:
        return type(self)(dict(self))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {dict.__repr__(self)}>"


class FileFilter(abc.ABC):
    """Post-processing applied to every file stored through a column.

    ``UploadedFileField(filters=[WithThumbnailFilter((128, 128))])`` calls :meth:`on_save` on
    each new UploadedFile, after the content is stored and before the descriptor is frozen.
    A filter may store derivative files: it must store them with
    :meth:`~sa_depot.fields.upload.UploadedFile.store_content`, which lists them in ``files``
    so that they are rolled back and deleted with the original, and record their ids or paths
    under keys of its own.

    An exception raised by a filter aborts the upload: every file stored so far, the original
    included, is removed and the exception propagates to the assignment.
    """

    @abc.abstractmethod
    def on_save(self, uploaded_file: DepotFileInfo) -> None:
        """Process a freshly stored file (the descriptor is writable during this call)."""


__all__ = ["DepotFileInfo", "FileFilter"]
