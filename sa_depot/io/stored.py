"""What a storage hands back: :class:`StoredFile` (a readable, seekable stored file) and
:class:`FileInfo` (the metadata every stored file carries), with the small value types and
helpers they need.

They live apart from the contract (:mod:`sa_depot.io.interfaces`, which imports them and
names them too) so that the input helpers of :mod:`sa_depot.io.utils` can recognise a stored
file without importing the contract that uses them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

#: Size of the chunks every backend reads and writes.
DEFAULT_CHUNK_SIZE = 1024 * 1024


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC, truncated to whole seconds.

    Whole seconds because HTTP dates (Last-Modified, If-Modified-Since) have no finer grain.
    """
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass
class FileInfo:
    """The metadata every stored file carries, whatever the backend.

    ``content_length`` and ``checksum`` (hex SHA-256 of the content) are ``None`` while the
    content is still streaming in, and for files written by filedepot, which stored neither
    checksum nor (for some backends) length.
    """

    file_id: str
    filename: str | None
    content_type: str
    last_modified: datetime
    content_length: int | None = None
    checksum: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def copy(self) -> FileInfo:
        """An independent copy (cheaper than :func:`dataclasses.replace`, on hot paths)."""
        return FileInfo(
            self.file_id,
            self.filename,
            self.content_type,
            self.last_modified,
            self.content_length,
            self.checksum,
            dict(self.extra),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the form local and memory storages persist."""
        data: dict[str, Any] = {
            "filename": self.filename,
            "content_type": self.content_type,
            "content_length": self.content_length,
            "last_modified": self.last_modified.isoformat(),
            "checksum": self.checksum,
        }
        if self.extra:
            data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, file_id: str, data: dict[str, Any]) -> FileInfo:
        """Read :meth:`to_dict`'s output, or filedepot's ``metadata.json``."""
        return cls(
            file_id=file_id,
            filename=data.get("filename"),
            content_type=data.get("content_type") or "application/octet-stream",
            last_modified=parse_timestamp(data.get("last_modified")),
            content_length=data.get("content_length"),
            checksum=data.get("checksum"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class ResponseOverrides:
    """Response headers a signed URL asks the store to send in place of the object's own.

    The serving layer passes them to :meth:`FileStorage.public_url` when it redirects a
    download, so that the browser gets the filename, content type and disposition decision
    it would get from a proxied response. Each store carries them in its own way: S3's
    ``response-content-disposition``/``response-content-type`` query parameters (S3 API
    reference, GetObject), GCS's ``response-content-disposition``/``response-content-type``,
    Azure SAS ``rscd``/``rsct``, Swift TempURL ``filename``/``inline``. A storage that cannot
    honour them returns no URL for such a request (``None``), and the download is proxied.
    """

    #: The ``Content-Type`` header value, e.g. ``'text/plain; charset=utf-8'``.
    content_type: str | None = None
    #: The ``Content-Disposition`` header value (RFC 6266), e.g.
    #: ``'attachment; filename="Resume.pdf"; filename*=UTF-8\'\'R%C3%A9sum%C3%A9.pdf'``.
    content_disposition: str | None = None


def parse_timestamp(value: object) -> datetime:
    """Parse an ISO timestamp, or filedepot's ``'%Y-%m-%d %H:%M:%S'`` (naive, meaning UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
    else:
        return utcnow()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def seek_target(offset: int, whence: int, current: int, end: int) -> int:
    """The absolute position ``seek(offset, whence)`` moves to, for backends that track
    their own position (S3, GridFS); raises ``ValueError`` as files do."""
    if whence == io.SEEK_SET:
        position = offset
    elif whence == io.SEEK_CUR:
        position = current + offset
    elif whence == io.SEEK_END:
        position = end + offset
    else:
        raise ValueError(f"invalid whence {whence!r}")
    if position < 0:
        raise ValueError(f"negative seek position {position}")
    return position


class StoredFile(io.RawIOBase, BinaryIO):
    """A file read back from a storage: a readable binary stream with its metadata.

    It is a ``typing.BinaryIO`` too, so that type checkers accept it wherever a binary file is
    expected (Pillow's ``Image.open``, ``zipfile.ZipFile``, ``shutil.copyfileobj``). It is a
    context manager and must be closed. ``seekable()`` tells whether the backend can
    seek (local, memory, S3 through ranged GETs and GridFS can).

    Backends implement :meth:`readinto` (or :meth:`read`), and ``seek``/``tell`` where they can.
    """

    def __init__(self, info: FileInfo) -> None:
        super().__init__()
        self.info = info

    # -- metadata, filedepot-compatible attribute names --------------------------------------
    @property
    def file_id(self) -> str:
        return self.info.file_id

    @property
    def filename(self) -> str | None:
        return self.info.filename

    @property
    def name(self) -> str | None:
        """The original filename (filedepot calls it ``name`` too)."""
        return self.info.filename

    @property
    def mode(self) -> str:
        """``'rb'``: a stored file reads as bytes, like a file opened with ``open(path, 'rb')``."""
        return "rb"

    @property
    def content_type(self) -> str:
        return self.info.content_type

    @property
    def content_length(self) -> int | None:
        return self.info.content_length

    @property
    def last_modified(self) -> datetime:
        return self.info.last_modified

    @property
    def checksum(self) -> str | None:
        """Hex SHA-256 of the content, computed while it was stored."""
        return self.info.checksum

    @property
    def public_url(self) -> str | None:
        """A URL that serves the file without the middleware, or ``None``: a backend that has
        one gives the same as its storage's :meth:`FileStorage.public_url`.

        Never an unsigned URL for a private object.
        """
        return None

    @property
    def local_path(self) -> str | None:
        """The path of the content on the local disk, when there is one (for sendfile)."""
        return None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(-1 if size is None else size)
        return data if data is not None else b""

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Iterate over the remaining content in chunks of at most ``chunk_size`` bytes."""
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def __repr__(self) -> str:
        # filedepot's form: <MemoryStoredFile:<id> filename=a.txt content_type=text/plain
        # last_modified=2024-05-04 10:21:07+00:00>
        return (
            f"<{type(self).__name__}:{self.file_id} filename={self.filename} "
            f"content_type={self.content_type} last_modified={self.last_modified}>"
        )


class PositionedStoredFile(StoredFile):
    """A :class:`StoredFile` for backends that read from a given position (S3's ranged GETs,
    GridFS's chunk documents).

    This class keeps the position and implements ``seek``, ``tell``, ``read``, ``readinto`` and
    ``readall``; a backend implements :meth:`_read_at` and, if it holds a stream that a seek
    invalidates, :meth:`_position_moved`.
    """

    def __init__(self, info: FileInfo, length: int, read_chunk_size: int) -> None:
        super().__init__(info)
        self._length = length
        self._position = 0
        self._read_chunk_size = read_chunk_size

    def _read_at(self, size: int) -> bytes:
        """Up to ``size`` (> 0) bytes at ``self._position``, which is before the end: at least
        one byte, or an exception."""
        raise NotImplementedError

    def _position_moved(self) -> None:
        """Called when a seek changed the position."""

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("seek on a closed file")
        position = seek_target(offset, whence, self._position, self._length)
        if position != self._position:
            self._position = position
            self._position_moved()
        return position

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed file")
        if size is None or size < 0:
            return b"".join(self.chunks(self._read_chunk_size))
        if size == 0 or self._position >= self._length:
            return b""
        data = self._read_at(min(size, self._length - self._position))
        self._position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)
