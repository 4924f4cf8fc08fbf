"""Who answers for a freshly uploaded file until a committed row holds it.

Every :class:`~sa_depot.fields.upload.UploadedFile` made from content in this process carries an
:class:`UploadRecord`. The record answers one question, "who removes these files if no row ever
keeps them?":

* **nobody yet** (``ledger is None``): the file was uploaded at assignment on an object that is
  in no session (or in one between transactions). If the UploadedFile is garbage-collected in
  that state, its files are queued as *abandoned* and removed at the next safe point
  (:func:`remove_abandoned`, which the session lifecycle calls after every transaction).
  Deleting from a garbage-collector callback itself could deadlock a storage holding a lock,
  so the callback only queues;
* **a transaction** (``ledger`` set by :mod:`sa_depot.fields.lifecycle`): the session
  transaction the object joined, or the one whose flush wrote the value. Its end decides:
  a commit keeps the files that were flushed, anything else removes them;
* **a committed row** (:attr:`UploadState.SAVED`): the lifecycle is done with the record.

A record whose files were removed is :attr:`UploadState.DISCARDED`: saving its descriptor again
raises :class:`~sa_depot.exceptions.FileDiscarded` instead of writing a row that points at
nothing.
"""

from __future__ import annotations

import atexit
import collections
import enum
import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sa_depot.manager import DepotManager

_log = logging.getLogger(__name__)

#: Guards the transitions of records and the ledgers holding them (sessions in several threads
#: can meet on one record, for instance when an object moves from one session to another).
lock = threading.RLock()

#: Paths whose UploadedFile was garbage-collected before anything saved it. Appending to a
#: deque is atomic, which is all a garbage-collector callback may safely do.
_abandoned: collections.deque[str] = collections.deque()
_atexit_registered = False
_live: weakref.WeakSet[UploadRecord] = weakref.WeakSet()


class _Nobody:
    pass


def _dead_reference() -> weakref.ref[Any]:
    return weakref.ref(_Nobody())


#: The claim of a file written by an ORM-enabled insert()/update(): some row that no
#: InstanceState stands for holds it, so any other row writing it gets a copy.
SOME_ROW: tuple[weakref.ref[Any], str] = (_dead_reference(), "")


class UploadState(enum.Enum):
    #: Uploaded; no committed row holds it yet.
    PENDING = "pending"
    #: A committed row holds it (or it was handed to a Core statement): not ours any more.
    SAVED = "saved"
    #: Its files were removed with the transaction that uploaded them.
    DISCARDED = "discarded"


class UploadRecord:
    """The lifecycle state of the files of one freshly uploaded UploadedFile.

    It holds no reference to the UploadedFile, so that the UploadedFile can be collected.
    """

    __slots__ = ("__weakref__", "_finalizer", "claim", "flushed", "ledger", "paths", "state")

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: tuple[str, ...] = tuple(paths)
        self.state = UploadState.PENDING
        #: The lifecycle's ledger of the transaction answering for the files, if any.
        self.ledger: Any = None
        #: ``(weakref to InstanceState, attribute key)`` of the row that wrote the value.
        self.claim: tuple[weakref.ref[Any], str] | None = None
        #: Whether a flush wrote the value (in the transaction of :attr:`ledger`).
        self.flushed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def path(self) -> str:
        return self.paths[0] if self.paths else ""

    def watch(self, owner: object) -> None:
        """Queue the files for removal if ``owner`` is collected while nobody answers for them."""
        global _atexit_registered
        self._finalizer = weakref.finalize(owner, _abandon, self)
        self._finalizer.atexit = False
        with lock:
            _live.add(self)
            if not _atexit_registered:
                atexit.register(_remove_unclaimed_at_exit)
                _atexit_registered = True

    def release(self) -> None:
        """Stop watching: something else now answers for the files."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _live.discard(self)

    def claimed_by(self, state: object, key: str) -> bool:
        if self.claim is None:
            return False
        holder, claimed_key = self.claim
        return claimed_key == key and holder() is state

    def mark_saved(self) -> None:
        self.state = UploadState.SAVED
        self.ledger = None
        self.release()

    def discard(self) -> list[tuple[str, BaseException]]:
        """Remove the files; return the failures (path, error)."""
        self.state = UploadState.DISCARDED
        self.ledger = None
        self.release()
        return remove_paths(self.paths)

    def __repr__(self) -> str:
        return f"<UploadRecord {self.path} {self.state.value} flushed={self.flushed}>"


def _abandon(record: UploadRecord) -> None:
    # A garbage-collector callback: no lock, no I/O (see the module docs).
    if record.state is UploadState.PENDING and record.ledger is None:
        record.state = UploadState.DISCARDED
        _abandoned.extend(record.paths)


def _remove_unclaimed_at_exit() -> None:
    for record in list(_live):
        if record.state is UploadState.PENDING and record.ledger is None:
            record.discard()
    remove_abandoned()


def remove_abandoned() -> list[str]:
    """Remove the files of UploadedFiles collected while nobody answered for them.

    Called after every session transaction; call it yourself in a long-lived process that
    uploads without using sessions. Returns the paths removed.
    """
    removed: list[str] = []
    while True:
        try:
            path = _abandoned.popleft()
        except IndexError:
            return removed
        if not remove_paths([path]):
            removed.append(path)


def abandoned_count() -> int:
    """How many abandoned paths wait for :func:`remove_abandoned` (for tests and metrics)."""
    return len(_abandoned)


def remove_paths(paths: Iterable[str]) -> list[tuple[str, BaseException]]:
    """Delete ``'storage/file_id'`` paths, each on its own; return the failures.

    A failure is logged and returned rather than raised: callers run after a commit or a
    rollback, where an exception would only hide the outcome of the transaction.
    """
    failures: list[tuple[str, BaseException]] = []
    for path in paths:
        try:
            storage_name, file_id = DepotManager.split_path(path)
            DepotManager.get(storage_name).delete(file_id)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who records it
            _log.warning("sa_depot could not remove %s: %s", path, exc)
            failures.append((path, exc))
    return failures


__all__ = [
    "SOME_ROW",
    "UploadRecord",
    "UploadState",
    "abandoned_count",
    "lock",
    "remove_abandoned",
    "remove_paths",
]
