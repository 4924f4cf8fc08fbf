"""When two paths name one stored file: shared by the file registry and the collector.

Two storage names configured on one directory or bucket (or an alias and its storage) name
the same files: ``legacy/<id>`` and ``default/<id>`` are one file when ``legacy`` and
``default`` store in the same place. Both the registry and the collector must count them as
one, or one would remove a file the other counts as used.
"""

from __future__ import annotations

import os
import weakref

from sa_depot.descriptor import join_path, split_path
from sa_depot.exceptions import DepotError
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager

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


__all__ = ["canonical_path", "reference_key", "storage_location"]
