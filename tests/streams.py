"""Input streams the tests hand to storages."""

from __future__ import annotations

import io
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
