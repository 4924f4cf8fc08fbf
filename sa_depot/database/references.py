"""Which rows reference which stored files, outside the file registry.

* Two storage names configured on one directory or bucket (or an alias and its storage) name
  the same files: ``legacy/<id>`` and ``default/<id>`` are one file when ``legacy`` and
  ``default`` store in the same place. The registry, the collector and the check below must
  all count them as one (:func:`storage_location`, :func:`reference_key`,
  :func:`canonical_path`), or one would remove a file another counts as used.
* :func:`referenced_paths` asks the file columns themselves which of some paths a row
  references. It is the session lifecycle's check for files the registry does not know yet
  (rows written before it existed, by filedepot or by raw SQL, not adopted), before it
  removes them after a commit: a ``LIKE`` query per file column, whose cost grows with the
  tables. Adopting the rows (``sa-depot adopt``) makes it unnecessary.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from sa_depot.descriptor import join_path, paths_in, split_path
from sa_depot.exceptions import DepotError
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager

#: File ids per ``LIKE`` query: one query per column for the usual handful of paths, and
#: statements of bounded size for a large bulk delete.
LIKE_BATCH_SIZE = 200

#: Tables found to exist, per engine (positive answers only: a table created later must be
#: seen, and one that exists keeps existing for all practical purposes).
_existing_tables: weakref.WeakKeyDictionary[sa.Engine, set[tuple[str | None, str]]] = (
    weakref.WeakKeyDictionary()
)
_existing_tables_lock = threading.Lock()

#: storage_location() per storage object (a storage does not move; realpath costs syscalls).
_locations: weakref.WeakKeyDictionary[FileStorage, object] = weakref.WeakKeyDictionary()


def storage_location(storage: FileStorage) -> object:
    """What identifies where a storage keeps its files: two names configured on one directory
    or bucket must share their references, or each would remove the other's files."""
    location = _locations.get(storage)
    if location is None:
        location = _locations[storage] = _location_of(storage)
    return location


def _location_of(storage: FileStorage) -> object:
    path = getattr(storage, "storage_path", None)
    if isinstance(path, str):
        return ("path", os.path.realpath(path))
    bucket = getattr(storage, "bucket", None)
    if isinstance(bucket, str):
        endpoint = getattr(storage, "endpoint_url", None)
        return ("bucket", endpoint, bucket, getattr(storage, "prefix", ""))
    return ("object", id(storage))


def reference_key(path: str) -> tuple[object, str] | None:
    """``(location, file_id)`` for a path into a configured storage, else ``None``."""
    try:
        storage_name, file_id = split_path(path)
        storage = DepotManager.get(storage_name)
    except DepotError:
        return None
    return (storage_location(storage), file_id)


def canonical_path(path: str) -> str:
    """The one path the registry records for the file ``path`` names: its storage name as
    first configured for that storage's location (aliases followed). A path into a storage
    this process does not know is returned as it is."""
    try:
        storage_name, file_id = split_path(path)
        storage = DepotManager.get(storage_name)
    except DepotError:
        return path
    location = storage_location(storage)
    for name in DepotManager.names():
        other = DepotManager.get(name)
        if other is storage or storage_location(other) == location:
            return join_path(name, file_id)
    return path  # pragma: no cover - the storage itself is among the names


def referenced_paths(
    connection: sa.Connection, columns: Iterable[sa.Column[Any]], paths: Iterable[str]
) -> set[str]:
    """Those of ``paths`` that some row of ``columns`` references, as seen by ``connection``.

    One query per column (per :data:`LIKE_BATCH_SIZE` paths): a ``LIKE '%file_id%'`` filter
    on the column's text, then an exact check of the descriptors found (:func:`paths_in`).
    Columns of tables missing from the database reference nothing.
    """
    wanted: dict[object, list[str]] = {}
    for path in dict.fromkeys(paths):
        wanted.setdefault(reference_key(path) or path, []).append(path)
    file_ids = sorted({split_path(p)[1] for group in wanted.values() for p in group})
    found: set[str] = set()
    if not file_ids:
        return found
    everything = {p for group in wanted.values() for p in group}
    for column in dict.fromkeys(columns):
        if not _table_exists(connection, column.table):
            continue
        text = sa.cast(column, sa.String())
        for start in range(0, len(file_ids), LIKE_BATCH_SIZE):
            batch = file_ids[start : start + LIKE_BATCH_SIZE]
            stmt = sa.select(text).where(
                column.is_not(None),
                sa.or_(*(text.contains(file_id, autoescape=True) for file_id in batch)),
            )
            for (value,) in connection.execute(stmt):
                for path in paths_in(value):
                    found.update(wanted.get(reference_key(path) or path, ()))
        if found >= everything:
            break
    return found


def forget_tables(engine: sa.Engine) -> None:
    """Forget which tables :func:`referenced_paths` found in ``engine``'s database (call it
    after a query failed: a table may have been dropped since)."""
    with _existing_tables_lock:
        _existing_tables.pop(engine, None)


def _table_exists(connection: sa.Connection, table: sa.FromClause) -> bool:
    if not isinstance(table, sa.Table):  # pragma: no cover - file columns belong to tables
        return True
    key = (table.schema, table.name)
    with _existing_tables_lock:
        if key in _existing_tables.get(connection.engine, ()):
            return True
    if not sa.inspect(connection).has_table(table.name, schema=table.schema):
        return False
    with _existing_tables_lock:
        _existing_tables.setdefault(connection.engine, set()).add(key)
    return True


__all__ = [
    "LIKE_BATCH_SIZE",
    "canonical_path",
    "forget_tables",
    "reference_key",
    "referenced_paths",
    "storage_location",
]
