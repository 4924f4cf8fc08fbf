"""Uploads that finish after the response: an :class:`Outbox` in front of a slow storage.

Flask-Store's ``S3GeventStore`` sent the upload to S3 from a gevent greenlet while the response
went out; a process that stopped meanwhile lost the file, and its URL pointed at nothing. An
outbox keeps that promise without gevent and without the loss:

1. :meth:`Outbox.store` writes the content to a local storage (``outbox``, a
   :class:`~sa_depot.io.local.LocalFileStorage`: atomic and fsynced) and returns its id at once;
2. a worker thread copies it to the target storage under the same id, with its metadata
   (:meth:`~sa_depot.io.interfaces.FileStorage.write_copy`), then deletes it from the outbox;
3. a process killed between 1 and 2 leaves the file in the outbox, durable: the next
   :class:`Outbox` on the same directory (the application's next start) sends it. A copy that
   fails (the target unreachable) is tried again later, waiting longer each time, up to
   ``max_delay`` seconds between attempts.

Until the copy is done the file is in the outbox, under the id it will keep: :meth:`open`
reads it from wherever it is, and the Flask extension's route serves it from there. Sending the
same file twice (two processes sharing the outbox both resume it) is harmless: the copy is
idempotent.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from sa_depot.exceptions import FileNotFound
from sa_depot.io.interfaces import FileInfo, FileStorage, StoredFile

_log = logging.getLogger(__name__)


class Outbox:
    """Write-behind uploads from ``outbox`` (local, durable) to ``target``.

    :param outbox: where uploads wait; a local storage of this machine.
    :param target: where they go (an S3 storage, typically).
    :param first_delay: seconds before the first retry of a failed copy; doubled at each
        failure of the same file, up to ``max_delay``.

    The worker thread starts with the first upload, or at once when the outbox holds files
    left by a previous process. :meth:`close` stops it (what is not sent stays in the outbox).
    """

    def __init__(
        self,
        outbox: FileStorage,
        target: FileStorage,
        *,
        first_delay: float = 1.0,
        max_delay: float = 300.0,
    ) -> None:
        self.outbox = outbox
        self.target = target
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._queue: queue.Queue[str] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._failures: dict[str, int] = {}
        left = self.outbox.list()
        if left:
            _log.info("outbox %s: resuming %d upload(s) left by a previous run", outbox, len(left))
            for file_id in left:
                self._enqueue(file_id)

    # -- the application's side ------------------------------------------------------------------
    def store(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> FileInfo:
        """Write ``content`` to the outbox and queue its copy to the target; return its
        metadata (the id is the one the target will use). Raises what the outbox's storage
        raises; a failure of the copy later is logged and retried, never raised here."""
        info = self.outbox.store(content, filename, content_type)
        self._enqueue(info.file_id)
        return info

    def open(self, file_id: str) -> StoredFile:
        """The file ``file_id``, from the target once it is there, else from the outbox.
        Raises :class:`~sa_depot.exceptions.FileNotFound` when it is in neither."""
        try:
            return self.target.get(file_id)
        except FileNotFound:
            return self.outbox.get(file_id)

    def pending(self) -> list[str]:
        """The ids still waiting in the outbox."""
        return self.outbox.list()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued copy has been attempted once more; ``True`` if the
        outbox is then empty (for tests and orderly shutdowns)."""
        done = threading.Event()

        def joined() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=joined, daemon=True).start()
        done.wait(timeout)
        return not self.pending()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker thread (after the copy in progress, if any)."""
        self._stopping.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # -- the worker ------------------------------------------------------------------------------
    def _enqueue(self, file_id: str) -> None:
        self._queue.put(file_id)
        with self._lock:
            if self._worker is None and not self._stopping.is_set():
                self._worker = threading.Thread(
                    target=self._run, name=f"sa_depot outbox {self.outbox}", daemon=True
                )
                self._worker.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                file_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._send(file_id)
            finally:
                self._queue.task_done()

    def _send(self, file_id: str) -> None:
        try:
            with self.outbox.get(file_id) as stored:
                self.target.write_copy(stored)
            self.outbox.delete(file_id)
        except FileNotFound:  # sent already (by another process sharing the outbox)
            self._failures.pop(file_id, None)
        except Exception as exc:  # noqa: BLE001 - logged and retried: the file is safe here
            failures = self._failures.get(file_id, 0) + 1
            self._failures[file_id] = failures
            delay = min(self.max_delay, self.first_delay * 2 ** (failures - 1))
            _log.warning(
                "outbox %s: sending %s to %s failed (%s); retrying in %.0f s (attempt %d)",
                self.outbox,
                file_id,
                self.target,
                exc,
                delay,
                failures,
            )
            timer = threading.Timer(delay, self._retry, args=(file_id,))
            timer.daemon = True  # what is not sent stays in the outbox for the next start
            timer.start()
        else:
            self._failures.pop(file_id, None)

    def _retry(self, file_id: str) -> None:
        if not self._stopping.is_set():
            self._queue.put(file_id)

    def __repr__(self) -> str:
        return f"<Outbox {self.outbox} -> {self.target}>"


__all__ = ["Outbox"]
