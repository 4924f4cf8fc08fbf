"""What the object stores (S3, Google Cloud Storage, Azure Blob Storage, OpenStack Swift) share.

* **Metadata as string pairs.** Each file is one object; its filename, modification time,
  checksum and extra fields travel in the object's user metadata. :func:`encode_metadata` and
  :func:`decode_metadata` turn a :class:`~sa_depot.io.interfaces.FileInfo` into such pairs and
  back, under the names a :class:`MetadataKeys` gives: filedepot's ``x-depot-*`` keys where
  filedepot had a backend (S3, GCS), so that either library reads the other's objects.
  Filenames are percent-encoded UTF-8 (metadata travels in HTTP headers: ASCII only).
* **One request for small content.** :func:`read_head` reads up to a threshold: content that
  ends within it is sent in one request with its checksum; longer content is streamed, in
  parts of a fixed size where the store wants them (:func:`iter_parts`).
* **Reading from a response body.** :class:`BodyStoredFile` reads an object through one
  response body; a seek drops the body and the next read opens another at the new position.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol
from urllib.parse import quote, unquote

from sa_depot.exceptions import StorageError
from sa_depot.io.interfaces import (
    DEFAULT_CHUNK_SIZE,
    FileInfo,
    IncomingContent,
    PositionedStoredFile,
    parse_timestamp,
)

log = logging.getLogger(__name__)

#: Where objects being uploaded in several requests are assembled, under the storage's prefix.
#: Listing ignores it (its names are no file ids).
UPLOADS_DIR = ".sa-depot-uploads/"
#: Percent-encoded filenames longer than this are shortened (S3 allows 2 KiB of metadata).
MAX_ENCODED_FILENAME = 1024
#: filedepot's format of the modification time (UTC), kept so that filedepot reads our files.
MODIFIED_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class MetadataKeys:
    """The metadata names under which a store keeps each field."""

    filename: str
    modified: str
    checksum: str
    extra: str


#: filedepot's names (S3 and GCS), plus ``x-depot-sha256`` and ``x-depot-extra``.
FILEDEPOT_KEYS = MetadataKeys(
    "x-depot-filename", "x-depot-modified", "x-depot-sha256", "x-depot-extra"
)


def encode_filename(filename: str) -> str:
    """Percent-encode a filename for metadata (ASCII only), shortened if it is too long."""
    encoded = quote(filename, safe="")
    if len(encoded) <= MAX_ENCODED_FILENAME:
        return encoded
    stem, dot, ext = filename.rpartition(".")
    if not dot or len(quote(ext, safe="")) > 32:
        stem, dot, ext = filename, "", ""
    suffix = quote(dot + ext, safe="")
    while stem and len(quote(stem, safe="")) + len(suffix) > MAX_ENCODED_FILENAME:
        stem = stem[: max(len(stem) * 3 // 4, len(stem) - 64)] if len(stem) > 64 else stem[:-1]
    return quote(stem, safe="") + suffix


def encode_metadata(
    info: FileInfo, keys: MetadataKeys = FILEDEPOT_KEYS, *, with_checksum: bool = True
) -> dict[str, str]:
    """The metadata pairs of ``info`` (the checksum left out when ``with_checksum`` is false:
    it is not known before the content is)."""
    meta = {keys.modified: info.last_modified.astimezone(timezone.utc).strftime(MODIFIED_FORMAT)}
    if info.filename:
        meta[keys.filename] = encode_filename(info.filename)
    if with_checksum and info.checksum:
        meta[keys.checksum] = info.checksum
    if info.extra:
        meta[keys.extra] = quote(json.dumps(info.extra, separators=(",", ":")), safe="")
    return meta


def decode_metadata(
    file_id: str,
    metadata: Mapping[str, str] | None,
    *,
    content_type: str | None,
    content_length: int | None,
    stored_at: datetime | None,
    keys: MetadataKeys = FILEDEPOT_KEYS,
) -> FileInfo:
    """A FileInfo from an object's metadata pairs (names compared case-insensitively) and the
    store's own fields; ``stored_at``, the store's modification time, stands in for a missing
    or unreadable modification time."""
    meta = {k.lower(): v for k, v in (metadata or {}).items()}
    filename = meta.get(keys.filename.lower())
    modified = meta.get(keys.modified.lower())
    extra: dict[str, str] = {}
    raw_extra = meta.get(keys.extra.lower())
    if raw_extra:
        try:
            extra = {str(k): str(v) for k, v in json.loads(unquote(raw_extra)).items()}
        except (ValueError, AttributeError):
            log.warning("ignoring unreadable %s metadata of %s", keys.extra, file_id)
    last_modified: datetime | None = None
    if modified:
        try:
            last_modified = parse_timestamp(modified)
        except ValueError:
            log.warning("ignoring unreadable %s metadata of %s", keys.modified, file_id)
    if last_modified is None:
        last_modified = parse_timestamp(stored_at)
    return FileInfo(
        file_id=file_id,
        filename=unquote(filename) if filename else None,
        content_type=content_type or "application/octet-stream",
        last_modified=last_modified.replace(microsecond=0),
        content_length=content_length,
        checksum=meta.get(keys.checksum.lower()),
        extra=extra,
    )


def read_head(content: IncomingContent, threshold: int) -> list[bytes]:
    """Read up to ``threshold`` bytes, and one more if there is more, as a list of chunks.

    Afterwards ``content.finished`` tells whether the head is the whole content (send it in
    one request, with its checksum) or more follows (stream it). The caller may consume the
    list, so that the head is not held for the whole of a long upload."""
    chunks: list[bytes] = []
    filled = 0
    while filled <= threshold:  # one byte past the threshold tells "exactly" from "more"
        data = content.read(min(content.chunk_size, threshold + 1 - filled))
        if not data:
            break
        chunks.append(data)
        filled += len(data)
    return chunks


def iter_part_buffers(
    content: IncomingContent, head: list[bytes], size: int
) -> Iterator[bytearray]:
    """Like :func:`iter_parts`, each part filled into a buffer of its own: the part is held
    once while it is read (no join), for clients that accept a bytearray as a body. Each
    read asks for the rest of the part (a file returns it in one piece)."""
    pending = list(head)
    head.clear()  # the caller's list would otherwise hold the head for the whole upload
    while True:
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        while filled < size:
            data = pending.pop(0) if pending else content.read(size - filled)
            if not data:
                break
            take = min(len(data), size - filled)
            view[filled : filled + take] = data[:take] if take < len(data) else data
            if take < len(data):
                pending.insert(0, data[take:])
            filled += take
            del data
        view.release()
        if not filled:
            return
        if filled < size:
            del buffer[filled:]
        yield buffer
        del buffer
        if content.finished and not pending:
            return


def iter_parts(content: IncomingContent, head: list[bytes], size: int) -> Iterator[bytes]:
    """The content, after ``head`` (which this consumes), in parts of exactly ``size`` bytes
    but the last: what multipart uploads and block lists send, one part in memory at a time."""
    # Chunks are gathered in a list and joined once per part: one copy of each byte, and
    # nothing part-sized stays allocated besides the part being sent.
    chunks: list[bytes] = list(head)
    filled = sum(len(chunk) for chunk in chunks)
    head.clear()  # the caller's list would otherwise hold the head for the whole upload
    while True:
        while filled < size:
            data = content.read(min(content.chunk_size, size - filled))
            if not data:
                break
            chunks.append(data)
            filled += len(data)
        if not filled:
            return
        joined = b"".join(chunks)
        chunks.clear()
        part, rest = joined[:size], joined[size:]  # a full slice of bytes is no copy
        del joined
        if rest:
            chunks.append(rest)
        filled = len(rest)
        del rest
        yield part
        del part
        if content.finished and not filled:
            return


class Body(Protocol):
    """A response body being read: ``read(size)`` returns up to ``size`` bytes, ``b""`` at
    the end."""

    def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class BodyStoredFile(PositionedStoredFile):
    """An object read through response bodies: the first read opens one at the current
    position (:meth:`_open_body`), reads go on from it, a seek drops it.

    A body that fails, or ends before the object's length, raises a :class:`StorageError`
    naming the file and the byte where reading stopped. Backends implement
    :meth:`_open_body` (a ranged GET, made conditional on the version first read where the
    store allows it) and list the exceptions their bodies raise in :attr:`read_errors`.
    """

    #: What reading a body may raise besides ``OSError`` (a library's transport errors).
    read_errors: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        info: FileInfo,
        length: int,
        description: str,
        body: Body | None = None,
        read_chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__(info, length, read_chunk_size)
        self._description = description
        self._body: Body | None = body

    def _open_body(self, position: int) -> Body:
        """A body starting at byte ``position`` of the version first read; raise
        :class:`StorageError` if it cannot be opened (or that version is gone)."""
        raise NotImplementedError

    def _read_at(self, size: int) -> bytes:
        if self._body is None:
            self._body = self._open_body(self._position)
        errors: tuple[type[BaseException], ...] = (OSError, *self.read_errors)
        try:
            data = self._body.read(size)
        except errors as exc:
            self._close_body()
            raise StorageError(
                self._description,
                f"reading file {self.file_id!r} failed at byte {self._position} of "
                f"{self._length}: {exc}",
            ) from exc
        if not data:
            self._close_body()
            raise StorageError(
                self._description,
                f"reading file {self.file_id!r}: the connection ended at byte "
                f"{self._position} of {self._length}",
            )
        return data

    def _position_moved(self) -> None:
        self._close_body()  # the next read opens a body at the new position

    def _close_body(self) -> None:
        body, self._body = self._body, None
        errors: tuple[type[BaseException], ...] = (OSError, *self.read_errors)
        if body is not None:
            try:
                body.close()
            except errors:  # a broken connection is being dropped anyway
                pass

    def close(self) -> None:
        self._close_body()
        super().close()
