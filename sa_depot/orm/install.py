"""Installing the lifecycle's listeners, and removing them.

:func:`watch_mappers` (called by ``UploadedFileField()``, never at import) listens for
``mapper_configured``, installs the Session listeners (``before_attach``, ``after_commit``,
``after_transaction_end``, ``do_orm_execute``) and the Engine's ``after_execute`` listener
(rows inserted through Core). A mapper with file columns gets, when it is configured, its own
attribute ``set`` listeners and ``before_insert``/``before_update``/``before_delete``
listeners, recorded on the mapper (:mod:`sa_depot.orm.mapped`). :func:`uninstall` removes
every listener (tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapper, Session

from sa_depot.orm import session_events
from sa_depot.orm.bulk import on_do_orm_execute
from sa_depot.orm.core_statements import on_after_execute
from sa_depot.orm.flush_events import make_flush_listeners, make_set_listener
from sa_depot.orm.mapped import (
    FileField,
    equipped_mappers,
    field_name,
    forget_fields,
    is_file_column,
    record_fields,
)

_lock = threading.RLock()


_SESSION_EVENTS: dict[str, Callable[..., Any]] = {
    "before_attach": session_events.on_before_attach,
    "after_commit": session_events.on_after_commit,
    "after_transaction_end": session_events.on_after_transaction_end,
    "do_orm_execute": on_do_orm_execute,
}
_MAPPER_LISTENERS = "sa_depot.listeners"


def watch_mappers() -> None:
    """Install the ``mapper_configured`` listener that equips mappers using file columns, the
    Session listeners and the Engine listener (idempotent; ``UploadedFileField()`` calls it).

    The Session listeners do nothing for sessions that never touch an equipped mapper; they
    are installed here rather than with the first equipped mapper because a mapper may be
    configured in the middle of the first statement that uses it.
    """
    with _lock:
        if event.contains(Mapper, "mapper_configured", _on_mapper_configured):
            return
        event.listen(Mapper, "mapper_configured", _on_mapper_configured)
        for identifier, fn in _SESSION_EVENTS.items():
            event.listen(Session, identifier, fn)
        event.listen(sa.Engine, "after_execute", on_after_execute)


def _on_mapper_configured(mapper: Mapper[Any], class_: type) -> None:
    equip(mapper)


def equip(mapper: Mapper[Any]) -> None:
    """Equip ``mapper`` if it has file columns (idempotent): what configuring it does, for a
    mapper configured before the lifecycle was (re)installed."""
    fields: dict[str, FileField] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if is_file_column(column):
            assert isinstance(column, sa.Column) and isinstance(column.type, FileField)
            fields[prop.key] = column.type
    if fields:
        install_for_mapper(mapper, fields)


def install_for_mapper(mapper: Mapper[Any], fields: dict[str, FileField]) -> None:
    """Equip ``mapper``: its file attributes ``fields`` join the lifecycle."""
    with _lock:
        if not record_fields(mapper, fields):
            return
        installed: list[tuple[Any, str, Callable[..., Any]]] = []
        for key, field_type in fields.items():
            target = mapper.class_manager[key]
            listener = make_set_listener(field_type, field_name(mapper, key))
            event.listen(target, "set", listener, retval=True)
            installed.append((target, "set", listener))
            installed.extend(field_type.instrument(target))  # after: it sees stored values
        for identifier, fn in make_flush_listeners(fields).items():
            event.listen(mapper, identifier, fn)
            installed.append((mapper, identifier, fn))
        mapper.class_manager.info[_MAPPER_LISTENERS] = installed


def installed_mappers() -> list[Mapper[Any]]:
    """The mappers equipped so far (and not disposed of)."""
    return equipped_mappers()


def uninstall() -> None:
    """Remove every listener the lifecycle installed and forget what it recorded on mappers
    (for tests).

    Mappers configured afterwards are equipped again as soon as an ``UploadedFileField`` is
    created; mappers configured before are not (call :func:`install_for_mapper`).
    """
    with _lock:
        for mapper in equipped_mappers():
            for target, identifier, fn in reversed(
                mapper.class_manager.info.pop(_MAPPER_LISTENERS, [])
            ):
                if event.contains(target, identifier, fn):
                    event.remove(target, identifier, fn)
            forget_fields(mapper)
        if event.contains(Mapper, "mapper_configured", _on_mapper_configured):
            event.remove(Mapper, "mapper_configured", _on_mapper_configured)
        for identifier, fn in _SESSION_EVENTS.items():
            if event.contains(Session, identifier, fn):
                event.remove(Session, identifier, fn)
        if event.contains(sa.Engine, "after_execute", on_after_execute):
            event.remove(sa.Engine, "after_execute", on_after_execute)


__all__ = ["equip", "install_for_mapper", "installed_mappers", "uninstall", "watch_mappers"]
