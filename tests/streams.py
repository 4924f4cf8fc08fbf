"""Input streams the tests hand to storages: those the storage contract uses, and one that
kills a server half-way."""

from __future__ import annotations

import io
import os
from typing import Any, Protocol

from sa_depot.testing.streams import FailingStream, GeneratedStream, InputBroke

__all__ = ["FailingStream", "GeneratedStream", "InputBroke", "KillsServerAt"]


class Killable(Protocol):
    def kill(self) -> None: ...


class KillsServerAt(io.RawIOBase):
    """Random content that kills the server (SIGKILL) once ``at`` bytes have been read."""

    def __init__(self, size: int, at: int, server: Killable) -> None:
        super().__init__()
        self.size, self.at, self.server = size, at, server
        self.position = 0
        self.killed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.at and not self.killed:
            self.server.kill()
            self.killed = True
        n = min(len(buffer), self.size - self.position)
        if self.position < self.at:
            n = min(n, self.at - self.position)
        buffer[:n] = os.urandom(n)
        self.position += n
        return n
