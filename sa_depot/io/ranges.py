"""Content read at any offset, by several threads at once, without being held in memory.

A :class:`RangeSource` is the rest of a content whose bytes stay where they are: a regular
file (read with ``os.pread``, which moves no file position, so threads never share one) or a
buffer in memory (sliced through a ``memoryview``, no copy). A backend that sends a large
content in parts gives each part to its HTTP client as a :class:`RangeReader`, a seekable
view the client reads (and re-reads after a retry) as it sends, instead of a copy of the part.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import zlib
from typing import Any

_HAS_PREAD = hasattr(os, "pread")
_HAS_PREADV = hasattr(os, "preadv")


class RangeSource:
    """Bytes ``[start, start + length)`` of a file descriptor, or a memory buffer.

    :param fd: a file descriptor of a regular file, or ``None`` with ``buffer``.
    :param buffer: the bytes, when they are in memory (``fd`` is then ``None``).
    :param start: the offset of the content's first byte in the file or buffer.
    :param length: bytes from ``start`` to the end, as known when the source is made (a
        file may still grow or shrink: whoever reads it all sets :attr:`length` to what it
        read).
    :param stream: the file object the bytes come from, moved to the end of what was read
        by :meth:`consumed`, as if it had been read.
    """

    def __init__(
        self,
        *,
        fd: int | None,
        buffer: memoryview | None,
        start: int,
        length: int,
        stream: Any,
    ) -> None:
        self._fd = fd
        self._buffer = buffer
        self._start = start
        self.length = length
        self._stream = stream

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (from the content's first byte); fewer only at
        the end. Safe to call from several threads at once."""
        if size <= 0:
            return b""
        if self._buffer is not None:
            return bytes(self._buffer[self._start + offset : self._start + offset + size])
        assert self._fd is not None  # one of the two, by construction
        data = os.pread(self._fd, size, self._start + offset)
        while 0 < len(data) < size:  # a regular file answers short only at its end
            more = os.pread(self._fd, size - len(data), self._start + offset + len(data))
            if not more:
                break
            data += more
        return data

    def chunk_at(self, offset: int, buffer: bytearray) -> memoryview:
        """Up to ``len(buffer)`` bytes at ``offset``, fewer only at the end: a slice of the
        bytes in memory (no copy), or read from the file into ``buffer`` (no allocation).
        Valid until the next call with the same buffer."""
        if self._buffer is not None:
            return self._buffer[self._start + offset : self._start + offset + len(buffer)]
        assert self._fd is not None  # one of the two, by construction
        view = memoryview(buffer)
        filled = 0
        while filled < len(buffer):  # a regular file answers short only at its end
            position = self._start + offset + filled
            if _HAS_PREADV:
                read = os.preadv(self._fd, [view[filled:]], position)
            else:  # macOS before Python 3.12...: read, then copy
                data = os.pread(self._fd, len(buffer) - filled, position)
                read = len(data)
                view[filled : filled + read] = data
            if not read:
                break
            filled += read
        return view[:filled]

    def consumed(self) -> None:
        """Leave the file object after the bytes read (:attr:`length`), as reading it would."""
        self._stream.seek(self._start + self.length)

    @classmethod
    def of(cls, stream: Any, already_read: int) -> RangeSource | None:
        """The rest of ``stream`` as a range source, or ``None`` when it is neither a regular
        file nor a buffer in memory (a pipe, a socket, a wrapper of unknown kind).

        ``already_read`` bytes before the stream's position belong to the content too (a head
        read to detect its type): the source starts that many bytes earlier.
        """
        inner = stream._file if isinstance(stream, tempfile.SpooledTemporaryFile) else stream
        try:
            position = stream.tell()
        except (OSError, ValueError, AttributeError):
            return None
        if not isinstance(position, int) or position < already_read:
            return None
        start = position - already_read
        if isinstance(inner, io.BytesIO):
            # getvalue() hands out the BytesIO's own bytes object, without a copy
            buffer = memoryview(inner.getvalue())
            return cls(
                fd=None, buffer=buffer, start=start, length=len(buffer) - start, stream=stream
            )
        if not _HAS_PREAD or not isinstance(
            inner, (io.BufferedReader, io.BufferedRandom, io.FileIO)
        ):
            return None  # Windows has no pread: its files go the stream's way
        try:
            if inner.writable():
                inner.flush()  # what was written must be in the file for os.pread to see it
            fd = inner.fileno()
            status = os.fstat(fd)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(status.st_mode) or status.st_size < start:
            return None
        return cls(fd=fd, buffer=None, start=start, length=status.st_size - start, stream=stream)


class RangeReader:
    """Bytes ``[offset, offset + length)`` of a :class:`RangeSource` as a seekable binary file,
    the body of one request.

    The client may read it several times (to sign it, then to send it, again on a retry).
    After :meth:`sending` it hashes what it hands over from its first byte on, so that
    :meth:`sent` tells what the last pass sent: its CRC32, and its SHA-256 unless the request
    was signed with it.
    """

    def __init__(self, source: RangeSource, offset: int, length: int) -> None:
        self._source = source
        self._offset = offset
        self._length = length
        self._position = 0
        self._hashing = False
        self._sha256: Any = None
        self._crc32 = 0
        self._hashed = 0
        self._signed_sha256: str | None = None

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._length - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        data = self._source.read_at(self._offset + self._position, size)
        if self._hashing and self._position == self._hashed and data:
            self._crc32 = zlib.crc32(data, self._crc32)
            if self._sha256 is not None:
                self._sha256.update(data)
            self._hashed += len(data)
        self._position += len(data)
        return data

    def sending(self, *, signed_sha256: str | None) -> None:
        """The next pass from the first byte is the one sent: hash it. Called once the request
        is signed, before each attempt, with the SHA-256 (hex) the signature covers if the
        payload is signed (its signer read the bytes and hashed them: that pass is not hashed
        again), else ``None`` (the pass sent is hashed with SHA-256 too)."""
        self._hashing = True
        self._signed_sha256 = signed_sha256
        self._sha256 = hashlib.sha256() if signed_sha256 is None else None
        self._crc32 = 0
        self._hashed = 0

    def sent(self) -> tuple[int, int, str | None]:
        """``(bytes, CRC32, SHA-256 hex)`` of the last pass sent, contiguous from the first
        byte (a pass that skipped bytes stops counting where it skipped); the SHA-256 is the
        one the request was signed with when it was, ``None`` if nothing was sent."""
        if not self._hashing:
            return 0, 0, None
        digest = self._sha256.hexdigest() if self._sha256 is not None else self._signed_sha256
        return self._hashed, self._crc32, digest
