"""The stored descriptor and the ``'storage/file_id'`` path: their one owner.

A column of type :class:`~sa_depot.fields.sqlalchemy.UploadedFileField` stores a *descriptor*,
a JSON object describing one stored file and its derivatives::

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

A file is named by its *path*, ``'<storage name>/<file id>'``: the storage as configured in
:class:`~sa_depot.manager.DepotManager`, a ``/``, then the id the storage gave the file (an id
may itself contain ``/``; a storage name may not). ``files`` lists every path the descriptor
owns, the original first, then derivatives such as thumbnails.

Descriptors written by filedepot have no ``depot_name``, ``content_length``, ``checksum`` nor
``files``: :func:`complete_loaded` fills ``depot_name`` and ``files`` from ``path``, and
:func:`owned_paths` also counts filedepot's derivative keys (``thumb_path``,
``thumb_<w>x<h>_path``). Every module that splits, joins or reads paths out of descriptors
does it here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from sa_depot.exceptions import InvalidFileId

#: What separates the storage name from the file id in a path.
SEPARATOR = "/"


def join_path(storage_name: str, file_id: str) -> str:
    """``'storage/file_id'``."""
    return f"{storage_name}{SEPARATOR}{file_id}"


def split_path(path: str) -> tuple[str, str]:
    """``(storage name, file id)`` of ``'storage/file_id'``.

    :raises InvalidFileId: (a ``ValueError``) when ``path`` is not a string with a non-empty
        storage name, a ``/`` and a non-empty file id.
    """
    if isinstance(path, str):
        storage_name, sep, file_id = path.partition(SEPARATOR)
        if sep and storage_name and file_id:
            return storage_name, file_id
    raise InvalidFileId("manager", path, "a path of the form 'storage/file_id'")


def storage_of(path: str) -> str:
    """The storage name of ``'storage/file_id'`` (raises as :func:`split_path`)."""
    return split_path(path)[0]


def is_path(value: object) -> bool:
    """Whether ``value`` is shaped like ``'storage/file_id'``."""
    if not isinstance(value, str):
        return False
    storage_name, sep, file_id = value.partition(SEPARATOR)
    return bool(sep and storage_name and file_id)


def complete_loaded(data: MutableMapping[str, Any]) -> None:
    """Fill in what a loaded descriptor lacks: ``depot_name`` and ``files`` from ``path``
    (filedepot's descriptors have neither), ``files`` as a tuple."""
    path = data.get("path")
    if isinstance(path, str) and is_path(path):
        if not data.get("depot_name"):
            data["depot_name"] = storage_of(path)
        if not data.get("files"):
            data["files"] = (path,)
    data["files"] = tuple(data.get("files") or ())


#: The key of a descriptor whose file waits in a queue storage for its promotion:
#: ``{"state": "queued", "to": "<public storage>"}`` (see :mod:`sa_depot.promotion`).
PROMOTION_KEY = "promotion"


def promotion_target(data: Mapping[str, Any]) -> str | None:
    """The storage a queued descriptor's file is to be promoted to, or ``None`` when the
    descriptor is not queued (promoted, or never queued)."""
    found = data.get(PROMOTION_KEY)
    if isinstance(found, Mapping) and found.get("state") == "queued":
        target = found.get("to")
        return target if isinstance(target, str) and target else None
    return None


def owned_paths(descriptor: Mapping[str, Any]) -> tuple[str, ...]:
    """Every path a descriptor owns: ``files``, else ``path``, plus filedepot's derivative
    paths (``thumb_path``, ``thumb_<w>x<h>_path``), each once, the original first."""
    found: dict[str, None] = {}
    files = descriptor.get("files")
    if isinstance(files, (list, tuple)):
        found.update((p, None) for p in files if is_path(p))
    path = descriptor.get("path")
    if isinstance(path, str) and is_path(path):
        found[path] = None
    for key, value in descriptor.items():
        if key.endswith("_path") and key != "path" and isinstance(value, str) and is_path(value):
            found[value] = None
    return tuple(found)


def paths_in(value: Any) -> Iterator[str]:
    """Every string in a stored column value that may be a path, however it was written.

    For the batch jobs that read raw column values (the collector, adoption): the JSON of a
    descriptor (as text, bytes or already decoded), filedepot's ``path`` and ``*_path`` keys,
    a plain path stored as text, and anything else shaped like a path. Deliberately generous:
    counting a string too many keeps a file; counting one too few would lose it.
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
            if is_path(item):
                yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


__all__ = [
    "PROMOTION_KEY",
    "SEPARATOR",
    "complete_loaded",
    "is_path",
    "join_path",
    "owned_paths",
    "paths_in",
    "promotion_target",
    "split_path",
    "storage_of",
]
