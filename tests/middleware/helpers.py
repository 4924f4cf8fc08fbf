"""Small helpers shared by the middleware tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sa_depot.io.interfaces import FileInfo, ResponseOverrides, StoredFile
from sa_depot.io.memory import MemoryFileStorage, MemoryStoredFile

#: The signing secret of the tests.
SECRET = "test-secret-0123456789abcdef"


def content(size: int) -> bytes:
    """``size`` bytes in which every offset is recognisable."""
    pattern = bytes(range(251))  # a prime length: no range lines up with the pattern
    return (pattern * (size // len(pattern) + 1))[:size]


TRACKING_BACKEND = "tests.middleware.helpers.TrackingStorage"


class TrackedMemoryFile(MemoryStoredFile):
    """A memory file that reports how many bytes were read from it and whether it was closed."""

    def __init__(self, info: FileInfo, data: bytes, storage: TrackingStorage) -> None:
        super().__init__(info, data)
        self._storage = storage

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = super().readinto(buffer)
        with self._storage.lock:
            self._storage.bytes_read += count
        return count

    def close(self) -> None:
        if not self.closed:
            with self._storage.lock:
                self._storage.closed += 1
        super().close()

    @property
    def public_url(self) -> str | None:
        return self._storage.public_url(self.file_id)


class TrackingStorage(MemoryFileStorage):
    """A memory storage that counts bytes read, files opened and closed.

    ``public_urls`` maps ids to the URL ``public_url`` gives; ``carries_overrides`` says
    whether that URL can carry response headers (a presigned URL can, a bare one cannot), and
    ``overrides_asked`` records, per id, the headers the last call asked for.
    """

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.lock = threading.Lock()
        self.bytes_read = 0
        self.opened = 0
        self.closed = 0
        self.public_urls: dict[str, str] = {}
        self.carries_overrides = True
        self.overrides_asked: dict[str, ResponseOverrides | None] = {}

    def public_url(
        self, file_or_id: StoredFile | str, *, response: ResponseOverrides | None = None
    ) -> str | None:
        file_id = self.fileid(file_or_id)
        self.overrides_asked[file_id] = response
        if response is not None and not self.carries_overrides:
            return None
        return self.public_urls.get(file_id)

    def _open(self, file_id: str) -> StoredFile:
        plain = super()._open(file_id)
        assert isinstance(plain, MemoryStoredFile)
        data = plain.read()
        plain.close()
        with self.lock:
            self.opened += 1
        return TrackedMemoryFile(plain.info, data, self)

    def forget_checksum(self, file_id: str, *, length: bool = False) -> None:
        """Make a file look like one stored by filedepot: no checksum (and no length)."""
        info, _ = self._files[file_id]
        info.checksum = None
        if length:
            info.content_length = None

    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_read = self.opened = self.closed = 0


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``predicate`` becomes true within ``timeout`` seconds.

    For effects a server applies after the client has the response (closing the app_iter).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


#: Downloads as users name them, each with a content type: spaces, accents (composed and
#: decomposed), quotes, RFC 6266 delimiters, percent signs, non-Latin scripts, emoji, and the
#: risky types (HTML, SVG, JavaScript, XML, unknown) next to types shown inline.
DOWNLOADS: list[tuple[str, str]] = [
    ("Quarterly report.pdf", "application/pdf"),
    ("Résumé 2024.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("Re\u0301sume\u0301 decomposed.txt", "text/plain"),
    ("He said 'hi' and left.txt", "text/plain; charset=utf-8"),
    ("semi;colon, comma=equals.csv", "text/csv"),
    ("100% done (final) [v2].png", "image/png"),
    ("naïve café — notes.md", "text/markdown"),
    ("Крупный отчёт.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("報告書 2024年.pdf", "application/pdf"),
    ("تقرير سنوي.pdf", "application/pdf"),
    ("שלום עולם.gif", "image/gif"),
    ("😀 party 🎉.gif", "image/gif"),
    ("index.html", "text/html"),
    ("Página de inicio.html", "text/html; charset=utf-8"),
    ("logo.svg", "image/svg+xml"),
    ("ロゴ.svg", "image/svg+xml"),
    ("app.js", "text/javascript"),
    ("feed.xml", "application/xml"),
    ("page.xhtml", "application/xhtml+xml"),
    ("blob", "application/octet-stream"),
]
#: The types of DOWNLOADS that may be shown inline; every other one must be an attachment.
SHOWN_INLINE = {"application/pdf", "text/plain", "image/png", "image/gif"}
