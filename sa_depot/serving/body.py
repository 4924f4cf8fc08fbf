"""Response bodies read from a stored file in chunks, so memory stays bounded by the chunk size.

A body is a list of pieces, each either literal bytes (multipart headers) or a byte range of
the file; the file is read by seeking to each range and reading it chunk by chunk.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence

from sa_depot.exceptions import StorageError
from sa_depot.io.interfaces import StoredFile
from sa_depot.serving.ranges import ByteRange

Piece = bytes | ByteRange


class StoredFileBody:
    """A WSGI response iterable over ``pieces``; closing it closes the stored file.

    :param to_end: read the file from its current position to its end instead of ``pieces``
        (for files of unknown length that cannot seek).
    """

    def __init__(
        self,
        stored: StoredFile,
        pieces: Sequence[Piece],
        chunk_size: int,
        *,
        to_end: bool = False,
    ) -> None:
        self._stored = stored
        self._pieces = list(pieces)
        self._chunk_size = chunk_size
        self._to_end = to_end

    @property
    def length(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p.length for p in self._pieces)

    def __iter__(self) -> Iterator[bytes]:
        if self._to_end:
            yield from self._stored.chunks(self._chunk_size)
            return
        position = 0  # a freshly opened stored file is at its start
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            if piece.start != position:
                self._stored.seek(piece.start)
            yield from self._read_range(piece)
            position = piece.stop

    def _read_range(self, piece: ByteRange) -> Iterator[bytes]:
        remaining = piece.length
        while remaining > 0:
            chunk = self._stored.read(min(self._chunk_size, remaining))
            if not chunk:
                # headers promised more bytes: fail loudly so the server cuts the connection
                # rather than let the client take a short body for the whole file
                raise StorageError(
                    f"{self._stored.file_id!r}",
                    f"the file ended {remaining} bytes before its recorded length "
                    f"{piece.complete_length}; the stored file is truncated",
                )
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self._stored.close()


def multipart_byteranges(ranges: Sequence[ByteRange], content_type: str) -> tuple[str, list[Piece]]:
    """The boundary and pieces of a ``multipart/byteranges`` body (RFC 9110 section 14.6)."""
    boundary = secrets.token_hex(16)
    pieces: list[Piece] = []
    for index, byte_range in enumerate(ranges):
        delimiter = f"--{boundary}" if index == 0 else f"\r\n--{boundary}"
        pieces.append(
            f"{delimiter}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: {byte_range.content_range}\r\n\r\n".encode("latin-1")
        )
        pieces.append(byte_range)
    pieces.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return boundary, pieces
