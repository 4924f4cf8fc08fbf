"""Input streams the storage contract hands to storages."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any


class InputBroke(Exception):
    """Raised by :class:`FailingStream`: the input, not the storage, failed."""


class FailingStream(io.RawIOBase):
    """Gives ``good`` bytes, then raises :class:`InputBroke`: an upload whose client went away."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise InputBroke("the client went away")
        n = min(len(buffer), self._left)
        buffer[:n] = b"p" * n
        self._left -= n
        return n


class ShortReadStream(io.RawIOBase):
    """A non-seekable stream returning at most 7 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 7))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class GeneratedStream(io.RawIOBase):
    """``size`` bytes of pseudo-random content produced on demand: non-seekable, never held in
    memory; :attr:`sha256` hashes what was read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._block = memoryview(os.urandom(1024 * 1024 + 7))  # odd length: chunks differ
        self._remaining = size
        self._position = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        wanted = min(len(target), self._remaining)
        filled = 0
        while filled < wanted:
            offset = self._position % len(self._block)
            take = min(wanted - filled, len(self._block) - offset)
            target[filled : filled + take] = self._block[offset : offset + take]
            filled += take
            self._position += take
        self._remaining -= wanted
        self.sha256.update(target[:wanted])
        return wanted
