"""UploadedFileList: the value of an ``UploadedFileListField`` attribute, an ordered list of
files changed in place.

It is SQLAlchemy's :class:`~sqlalchemy.ext.mutable.MutableList`, whose changes flag the
attribute of the row holding it as modified (so ``doc.attachments.append(...)`` needs no
reassignment), with one addition: what goes in is stored first, as assigning it to a single
file column would (the column's storage, upload type, validators and filters), and the
transaction of the row's session answers for it. Removing or replacing an item lets go of its
files when the row is flushed; they are removed once the transaction commits, as a replaced
single file is.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, SupportsIndex

from sqlalchemy.ext.mutable import MutableList
from sqlalchemy.orm import InstanceState
from sqlalchemy.util import memoized_property

from sa_depot.fields.upload import UploadedFile
from sa_depot.orm.flush_events import answer_for_row
from sa_depot.orm.mapped import FileField, field_name, file_fields_of, validated_in


class _Rows(weakref.WeakKeyDictionary[InstanceState[Any], str]):
    """The rows holding a list, as ``ext.mutable`` keeps them (row state -> attribute key),
    each row also held strongly: a list taken from a row that nothing else holds
    (``session.get(Album, 1).photos.append(...)``) must still reach its row, or the change
    would be lost with the row's state."""

    def __init__(self) -> None:
        super().__init__()
        self._strong: dict[int, object] = {}

    def __setitem__(self, state: InstanceState[Any], key: str) -> None:
        super().__setitem__(state, key)
        self._strong[id(state)] = state.obj()

    def pop(self, state: InstanceState[Any], *default: Any) -> Any:
        self._strong.pop(id(state), None)
        return super().pop(state, *default)


class UploadedFileList(MutableList[UploadedFile]):
    """The files of one ``UploadedFileListField`` attribute of one row, in order.

    Append, insert, extend, assign items or slices, remove, pop, sort, reverse: the row is
    flagged as changed and its files follow at the next flush. Content put in (bytes, files,
    uploads, ``UploadedFile.of(content)``) is stored at once and validated by the column; an
    item that breaks a validator raises
    :class:`~sa_depot.exceptions.ValidationFailed` and leaves the list as it was. A list that
    belongs to no row yet keeps what it is given until it is assigned to an attribute.
    """

    @memoized_property
    def _parents(self) -> _Rows:
        return _Rows()

    def _owner(self) -> tuple[InstanceState[Any], str, FileField] | None:
        for state, key in list(self._parents.items()):
            fields = file_fields_of(state.mapper)
            if fields and key in fields:
                return state, key, fields[key]
        return None

    def _stored(self, values: Iterable[Any]) -> list[Any]:
        """``values`` as the items the row's column makes of them (stored, validated)."""
        owner = self._owner()
        if owner is None:
            return list(values)
        state, key, field = owner
        with validated_in(field_name(state.mapper, key)):
            items: list[Any] = field.coerce_items(values)
        answer_for_row(state, items)
        return items

    # -- what puts items in ------------------------------------------------------------------
    def append(self, x: Any) -> None:
        super().append(self._stored([x])[0])

    def extend(self, x: Iterable[Any]) -> None:
        super().extend(self._stored(x))

    def insert(self, i: SupportsIndex, x: Any) -> None:
        super().insert(i, self._stored([x])[0])

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        if isinstance(index, slice):
            super().__setitem__(index, self._stored(value))
        else:
            super().__setitem__(index, self._stored([value])[0])

    @classmethod
    def coerce(cls, key: str, value: Any) -> UploadedFileList | None:
        """A loaded value, or one the lifecycle made, as SQLAlchemy's mutation tracking sees
        it (the lifecycle's own ``set`` listener stores content before this runs)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, (list, tuple)):
            return cls(value)
        raise ValueError(f"{key} holds a list of files, not {type(value).__name__}")


__all__ = ["UploadedFileList"]
