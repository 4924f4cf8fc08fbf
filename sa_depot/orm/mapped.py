"""Which mapped attributes hold files, kept on each mapper's class manager.

As SQLAlchemy's ``ext/mutable.py`` keeps its state on the classes it instruments, the lifecycle
records the ``UploadedFileField`` attributes of a mapper in the mapper's
:attr:`~sqlalchemy.orm.ClassManager.info`: nothing module-global, and a disposed registry takes
the record with it.
"""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

from sa_depot.database.registry import RowRef, row_key
from sa_depot.exceptions import ValidationFailed

_INFO_KEY = "sa_depot.file_fields"
_LOCKED_READS_KEY = "sa_depot.locked_reads"

#: The equipped mappers, weakly (what each holds is on the mapper itself).
_equipped: weakref.WeakSet[Mapper[Any]] = weakref.WeakSet()


@runtime_checkable
class FileField(Protocol):
    """What the lifecycle needs of a column type holding files (``UploadedFileField``)."""

    #: Marks the type (SQLAlchemy types do not otherwise expose these methods).
    sa_depot_file_field: bool

    #: The class of the descriptors the column holds (``UploadedFile`` or a subclass).
    upload_type: type[Any]

    def coerce(self, value: Any) -> Any:
        """What assigning ``value`` (content, an UploadedFile, a descriptor dict; a list of
        them for a file list) stores in the attribute: content is stored and validated, a
        fresh upload made elsewhere is validated; raises ``ValidationFailed``."""

    def coerce_items(self, values: Any) -> list[Any]:
        """The UploadedFiles that adding ``values`` to a file list stores (as ``coerce``)."""

    def instrument(self, attribute: Any) -> list[tuple[Any, str, Any]]:
        """Install the attribute's own listeners; return them, to be removed on uninstall."""

    def accept(self, uploaded: Any) -> None:
        """Validate a fresh upload the column did not store itself (removed if it fails)."""

    def upload(self, content: Any) -> Any:
        """Store ``content`` as the column stores it; return its UploadedFile."""

    def copy_of(self, uploaded: Any) -> Any:
        """Store a copy of the file ``uploaded`` describes; return the new UploadedFile."""

    def from_descriptor(self, value: Any) -> Any:
        """Wrap an existing descriptor (a dict) without storing anything."""


def is_file_column(column: object) -> bool:
    """Whether ``column`` is a table column whose type holds files."""
    return isinstance(column, sa.Column) and getattr(column.type, "sa_depot_file_field", False)


def file_fields_of(mapper: Mapper[Any]) -> dict[str, FileField] | None:
    """The file attributes of an equipped mapper (attribute key -> column type), else None."""
    fields: dict[str, FileField] | None = mapper.class_manager.info.get(_INFO_KEY)
    return fields


def record_fields(mapper: Mapper[Any], fields: dict[str, FileField]) -> bool:
    """Record ``fields`` on ``mapper``; ``False`` if it was equipped already."""
    info = mapper.class_manager.info
    if _INFO_KEY in info:
        return False
    info[_INFO_KEY] = dict(fields)
    _equipped.add(mapper)
    return True


def forget_fields(mapper: Mapper[Any]) -> None:
    mapper.class_manager.info.pop(_INFO_KEY, None)
    mapper.class_manager.info.pop(_LOCKED_READS_KEY, None)
    _equipped.discard(mapper)


def equipped_mappers() -> list[Mapper[Any]]:
    """The mappers whose file attributes are recorded (and not disposed of)."""
    return [m for m in list(_equipped) if file_fields_of(m) is not None]


def file_column(mapper: Mapper[Any], key: str) -> sa.Column[Any]:
    column = mapper.get_property(key).columns[0]
    assert isinstance(column, sa.Column)
    return column


def locked_read(mapper: Mapper[Any], key: str) -> tuple[sa.Select[Any], tuple[str, ...]]:
    """The ``SELECT`` of attribute ``key``'s column in one row of ``mapper``'s table, found by
    its primary key, ``FOR UPDATE``; and the names of its bound parameters, one per column of
    ``mapper.primary_key`` in that order.

    Built once per mapper and attribute and kept on the mapper's class manager (as the file
    fields are): the flush runs it before every ``UPDATE`` or ``DELETE`` of a row with files,
    and a statement built anew each time has its cache key computed anew too.
    """
    info = mapper.class_manager.info
    reads: dict[str, tuple[sa.Select[Any], tuple[str, ...]]] | None = info.get(_LOCKED_READS_KEY)
    if reads is None:
        reads = info.setdefault(_LOCKED_READS_KEY, {})
    found = reads.get(key)
    if found is None:
        names = tuple(f"sa_depot_pk_{index}" for index in range(len(mapper.primary_key)))
        criteria = [
            pk == sa.bindparam(name) for pk, name in zip(mapper.primary_key, names, strict=True)
        ]
        statement = (
            sa.select(file_column(mapper, key))
            .select_from(mapper.persist_selectable)
            .where(*criteria)
            .with_for_update()
        )
        found = reads[key] = (statement, names)
    return found


def row_ref(mapper: Mapper[Any], key: str, primary_key: tuple[Any, ...] | None) -> RowRef:
    """The registry's name of attribute ``key`` of the row whose primary key is given."""
    column = file_column(mapper, key)
    return RowRef(
        table=column.table.fullname,
        column=column.name,
        key="" if primary_key is None else row_key(primary_key),
    )


def field_name(mapper: Mapper[Any], key: str) -> str:
    """How errors name attribute ``key`` of ``mapper``'s class: ``'Document.content'``."""
    return f"{mapper.class_.__name__}.{key}"


class validated_in:
    """Name the field ``name`` in a :class:`~sa_depot.exceptions.ValidationFailed` raised
    in the block (the stream that found the violations does not know the field).

    A class rather than a ``@contextmanager`` generator: every assignment of a file
    attribute enters one, and a generator-based context costs twice the calls."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, ValidationFailed):
            raise exc.in_field(self.name) from None


__all__ = [
    "FileField",
    "field_name",
    "validated_in",
    "equipped_mappers",
    "file_column",
    "file_fields_of",
    "forget_fields",
    "is_file_column",
    "locked_read",
    "record_fields",
    "row_ref",
]
