"""Which stored files a row references: shared by the session lifecycle and the collector.

Both must agree, or one would remove a file the other counts as referenced:

* :func:`paths_in` reads every path-shaped string out of a stored descriptor (sa_depot's
  ``files``, filedepot's ``path`` and ``thumb_*_path``, plain text);
* :func:`reference_key` turns a path into ``(where the storage keeps its files, file_id)``, so
  that two storage names configured on one directory or bucket count as one file;
* :func:`referenced_paths` asks the database which of some paths committed rows still
  reference (the lifecycle's check before it removes files after a commit).
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from sa_depot.exceptions import DepotError
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager

#: File ids per ``LIKE`` prefilter query: one query per column for the usual handful of paths,
#: and statements of bounded size for a large bulk delete.
LIKE_BATCH_SIZE = 200

#: Tables found to exist, per engine (positive answers only: a table created later must be
#: seen, and one that exists keeps existing for all practical purposes).
_existing_tables: weakref.WeakKeyDictionary[sa.Engine, set[tuple[str | None, str]]] = (
    weakref.WeakKeyDictionary()
)
_existing_tables_lock = threading.Lock()


def paths_in(value: Any) -> Iterator[str]:
    """Every string in a stored value that may be a ``'storage/file_id'`` path.

    Deliberately generous: ``files``, ``path``, filedepot's ``thumb_*_path``, plain paths
    stored as text, and anything else shaped like a path. Counting a string too many keeps a
    file; counting one too few would lose it.
    """
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[", '"'):
            try:
                value = json.loads(text)
            except ValueError:
                value = text
        else:
            value = text
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "/" in item:
                yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def storage_location(storage: FileStorage) -> object:
    """What identifies where a storage keeps its files: two names configured on one directory
    or bucket must share their references, or each would remove the other's files."""
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
    storage_name, sep, file_id = path.partition("/")
    if not sep or not storage_name or not file_id:
        return None
    try:
        storage = DepotManager.get(storage_name)
    except DepotError:
        return None
    return (storage_location(storage), file_id)


def _key_or_path(path: str) -> object:
    """The key two paths to one file share (the path itself if its storage is unknown)."""
    return reference_key(path) or path


def referenced_paths(
    connection: sa.Connection, columns: Iterable[sa.Column[Any]], paths: Iterable[str]
) -> set[str]:
    """Those of ``paths`` that some row of ``columns`` references, as seen by ``connection``.

    One query per column (per :data:`LIKE_BATCH_SIZE` paths): a ``LIKE '%file_id%'`` prefilter
    on the column's text, then an exact check of the descriptors found (:func:`paths_in`).
    Columns of tables missing from the database reference nothing.
    """
    wanted: dict[object, list[str]] = {}
    for path in dict.fromkeys(paths):
        wanted.setdefault(_key_or_path(path), []).append(path)
    file_ids = sorted(
        {path.partition("/")[2] or path for group in wanted.values() for path in group}
    )
    found: set[str] = set()
    if not file_ids:
        return found
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
                    found.update(wanted.get(_key_or_path(path), ()))
        if found.issuperset(_flatten(wanted.values())):
            break
    return found


def forget_tables(engine: sa.Engine) -> None:
    """Forget which tables :func:`referenced_paths` found in ``engine``'s database (call it
    after a query failed: a table may have been dropped since)."""
    with _existing_tables_lock:
        _existing_tables.pop(engine, None)


def _flatten(groups: Iterable[list[str]]) -> list[str]:
    return [path for group in groups for path in group]


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
    "forget_tables",
    "paths_in",
    "reference_key",
    "referenced_paths",
    "storage_location",
]
