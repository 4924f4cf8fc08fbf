"""A storage that fails on demand, wrapping a real one."""

from __future__ import annotations

from collections.abc import Iterator

from sa_depot.exceptions import StorageError
from sa_depot.io.interfaces import FileStorage, IncomingContent, StoredFile


class FlakyStorage(FileStorage):
    """Delegates to ``inner``; ``fail_writes``/``fail_deletes`` make those operations raise
    :class:`~sa_depot.exceptions.StorageError`. ``fail_writes_after`` lets that many writes
    succeed first (to fail a derivative after its original)."""

    def __init__(self, **options: object) -> None:
        self.inner: FileStorage | None = None
        self.fail_writes = False
        self.fail_writes_after: int | None = None
        self.fail_deletes = False

    def _inner(self) -> FileStorage:
        assert self.inner is not None, "set FlakyStorage.inner"
        return self.inner

    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        if self.fail_writes_after is not None:
            if self.fail_writes_after <= 0:
                content.read(10)  # fail half way through, as a real backend would
                raise StorageError(self.description, "injected write failure")
            self.fail_writes_after -= 1
        if self.fail_writes:
            content.read(10)
            raise StorageError(self.description, "injected write failure")
        self._inner()._write(content, replace=replace)

    def _open(self, file_id: str) -> StoredFile:
        return self._inner()._open(file_id)

    def _delete(self, file_id: str) -> None:
        if self.fail_deletes:
            raise StorageError(self.description, "injected delete failure")
        self._inner()._delete(file_id)

    def _exists(self, file_id: str) -> bool:
        return self._inner()._exists(file_id)

    def _iter_ids(self) -> Iterator[str]:
        return self._inner()._iter_ids()
