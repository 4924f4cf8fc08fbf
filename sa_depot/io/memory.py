"""An in-process storage: for tests, demos and caches. Content lives in this process only."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

from sa_depot.exceptions import FileNotFound
from sa_depot.io.interfaces import FileInfo, FileStorage, IncomingContent, StoredFile


class MemoryStoredFile(StoredFile):
    """A seekable view of an immutable in-memory blob."""

    def __init__(self, info: FileInfo, data: bytes) -> None:
        super().__init__(info)
        self._buffer = io.BytesIO(data)

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed file")
        return self._buffer.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._buffer.readinto(buffer)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        return self._buffer.tell()

    def close(self) -> None:
        self._buffer.close()  # so that reading a closed file fails, as with every other file
        super().close()


class MemoryFileStorage(FileStorage):
    """Keeps files in a dict, guarded by a lock so that threads may share it.

    ``MemoryFileStorage(**options)`` accepts and ignores unknown options, as filedepot's does,
    so that a configuration written for another backend can be pointed at it in tests.
    """

    def __init__(self, **options: object) -> None:
        self._files: dict[str, tuple[FileInfo, bytes]] = {}
        self._lock = threading.Lock()

    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        data = b"".join(content.chunks())
        info = content.info.copy()
        with self._lock:
            self._files[info.file_id] = (info, data)

    def _open(self, file_id: str) -> StoredFile:
        with self._lock:
            entry = self._files.get(file_id)
        if entry is None:
            raise FileNotFound(self.description, file_id)
        info, data = entry
        return MemoryStoredFile(info.copy(), data)

    def _delete(self, file_id: str) -> None:
        with self._lock:
            self._files.pop(file_id, None)

    def _exists(self, file_id: str) -> bool:
        with self._lock:
            return file_id in self._files

    def _iter_ids(self) -> Iterator[str]:
        with self._lock:
            ids = list(self._files)
        return iter(ids)
