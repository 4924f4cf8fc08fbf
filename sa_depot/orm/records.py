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
* **a transaction** (``ledger`` set): the ledger (:mod:`sa_depot.orm.ledgers`) of the session
  transaction the object joined, or of the one whose flush wrote the value. Its end decides:
  a commit keeps the files that were flushed, anything else removes them;
* **a committed row** (:attr:`UploadState.SAVED`): the lifecycle is done with the record.

A record whose files were removed is :attr:`UploadState.DISCARDED`: saving its descriptor again
raises :class:`~sa_depot.exceptions.FileDiscarded` instead of writing a row that points at
nothing.

This module owns every change of a record's state, claim and ledger, under :data:`lock`
(sessions in several threads can meet on one record, for instance when an object moves from
one session to another). Ledgers hold their records in ``uploads`` lists that only the
functions here change.
"""

from __future__ import annotations

import atexit
import collections
import enum
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sa_depot.manager import remove_paths

#: Guards the transitions of records and the ``uploads`` lists of the ledgers holding them.
lock = threading.RLock()

#: Paths whose UploadedFile was garbage-collected before anything saved it. Appending to a
#: deque is atomic, which is all a garbage-collector callback may safely do.
_abandoned: collections.deque[str] = collections.deque()
#: The records waiting for their UploadedFile to be saved or collected. Holding them keeps
#: alive the weak reference each holds to its UploadedFile, whose callback is the watch.
_watched: set[UploadRecord] = set()
_atexit: list[bool] = []  # registered once per process: a list, so no ``global`` is needed


class _Nobody:
    pass


#: The claim of a file written by an ORM-enabled insert()/update(): some row that no
#: InstanceState stands for holds it, so any other row writing it gets a copy.
SOME_ROW: tuple[weakref.ref[Any], str] = (weakref.ref(_Nobody()), "")


class UploadState(enum.Enum):
    #: Uploaded; no committed row holds it yet.
    PENDING = "pending"
    #: A committed row holds it (or it was handed to a Core statement): not ours any more.
    SAVED = "saved"
    #: Its files were removed with the transaction that uploaded them.
    DISCARDED = "discarded"


class Answerer(Protocol):
    """What answers for records: a ledger, holding them in ``uploads``."""

    uploads: list[UploadRecord]


class UploadRecord:
    """The lifecycle state of the files of one freshly uploaded UploadedFile.

    It holds no reference to the UploadedFile, so that the UploadedFile can be collected.
    """

    __slots__ = (
        "__weakref__",
        "_owner",
        "claim",
        "flushed",
        "ledger",
        "paths",
        "registered",
        "state",
    )

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: tuple[str, ...] = tuple(paths)
        self.state = UploadState.PENDING
        #: The ledger of the transaction answering for the files, if any.
        self.ledger: Answerer | None = None
        #: ``(weakref to InstanceState, attribute key)`` of the row that wrote the value.
        self.claim: tuple[weakref.ref[Any], str] | None = None
        #: Whether a flush or statement wrote the value (in the transaction of :attr:`ledger`).
        self.flushed = False
        #: Whether the file registry was told of the files once already.
        self.registered = False
        #: A weak reference to the UploadedFile while nobody answers for it (:meth:`watch`).
        self._owner: weakref.ref[Any] | None = None

    @property
    def path(self) -> str:
        return self.paths[0] if self.paths else ""

    @property
    def removable(self) -> tuple[str, ...]:
        """The paths to remove when the record is discarded: all of them for content this
        process uploaded; none for an object the record only borrowed (a direct upload stays
        staged, for its token to be used again, until the collector's grace period ends)."""
        return self.paths

    @property
    def discarded(self) -> bool:
        return self.state is UploadState.DISCARDED

    @property
    def unanswered(self) -> bool:
        """Pending, and no transaction answers for it."""
        return self.state is UploadState.PENDING and self.ledger is None

    # -- nobody answers yet ------------------------------------------------------------------
    def watch(self, owner: object) -> None:
        """Queue the files for removal if ``owner`` is collected while nobody answers for them."""
        # A weak reference with a callback: weakref.finalize does the same with four times
        # the work, on every upload. _watched keeps the reference alive until _unwatch.
        self._owner = weakref.ref(owner, self._owner_collected)
        with lock:
            _watched.add(self)
            if not _atexit:
                atexit.register(_remove_unclaimed_at_exit)
                _atexit.append(True)

    def _owner_collected(self, owner: weakref.ref[Any]) -> None:
        # A garbage-collector callback: no lock, no I/O (see the module docs); removing an
        # item from a set is atomic, as appending to a deque is.
        _watched.discard(self)
        _abandon(self)

    def _unwatch(self) -> None:
        self._owner = None  # its callback goes with it
        _watched.discard(self)

    # -- transitions -------------------------------------------------------------------------
    def answer_to(self, ledger: Answerer) -> None:
        """Make ``ledger`` answer for the files (taking the record from another ledger)."""
        with lock:
            previous = self.ledger
            if previous is ledger:
                return
            if previous is not None:
                previous.uploads.remove(self)
            self.ledger = ledger
            self._unwatch()
            ledger.uploads.append(self)

    def answer_if_unanswered(self, ledger: Answerer) -> None:
        """Let ``ledger`` answer for a fresh upload nobody answers for yet."""
        with lock:
            if self.unanswered:
                self.answer_to(ledger)

    def claim_for_row(
        self,
        state: object,
        key: str,
        ledger: Answerer,
        losing: Callable[[Iterable[str]], bool],
    ) -> bool:
        """Claim the files for the row ``state``'s attribute ``key``, written by a flush of
        the transaction of ``ledger``; return ``False`` (and change nothing) when another row
        holds them, or will, or when ``losing(paths)`` says the transaction is removing
        them: the row must then get a copy."""
        with lock:
            if self.state is not UploadState.PENDING:
                return False
            if self.claim is not None and not self.claimed_by(state, key):
                return False
            if losing(self.paths):
                return False
            self.claim = (weakref.ref(state), key)
            self.flushed = True
            self.answer_to(ledger)
            return True

    def claimed_by(self, state: object, key: str) -> bool:
        if self.claim is None:
            return False
        holder, claimed_key = self.claim
        return claimed_key == key and holder() is state

    def first_registration(self) -> bool:
        """Whether the files are still a fresh upload nobody registered: the first row
        written with them registers them without locks; later ones attach to them."""
        with lock:
            if self.state is not UploadState.PENDING or self.registered:
                return False
            self.registered = True
            return True

    def written_by_statement(self) -> None:
        """An ORM-enabled statement wrote the value into some row."""
        with lock:
            self.flushed = True
            self.claim = SOME_ROW

    def hand_over(self) -> None:
        """A Core statement is writing a fresh upload nobody answers for: the row it writes
        holds the files from now on (the registry and the collector know of them)."""
        if self.unanswered:
            with lock:
                if self.unanswered:
                    self._saved()

    def _saved(self) -> None:
        self.state = UploadState.SAVED
        self.ledger = None
        self._unwatch()

    def _discarded(self) -> None:
        self.state = UploadState.DISCARDED
        self.ledger = None
        self._unwatch()

    def __repr__(self) -> str:
        return f"<UploadRecord {self.path} {self.state.value} flushed={self.flushed}>"


# == what ledgers do with their records ==========================================================
def pass_to_parent(child: Answerer, parent: Answerer) -> None:
    """A released SAVEPOINT's records are answered for by its parent transaction."""
    with lock:
        for record in child.uploads:
            record.ledger = parent
            parent.uploads.append(record)
        child.uploads = []


def end_of_transaction(ledger: Answerer, *, committed: bool) -> list[UploadRecord]:
    """The transaction of ``ledger`` ended: with a commit, its flushed records are saved;
    every other record (all of them after a rollback) is discarded. Returns the discarded
    records: the caller removes their files (:func:`remove_files`) outside the lock."""
    discarded: list[UploadRecord] = []
    with lock:
        records = [r for r in ledger.uploads if r.ledger is ledger]
        ledger.uploads = []
        for record in records:
            if committed and record.flushed:
                record._saved()
            else:  # rolled back, or uploaded for an object that no flush ever wrote
                record._discarded()
                discarded.append(record)
    return discarded


def remove_files(records: Iterable[UploadRecord]) -> list[tuple[str, BaseException]]:
    """Remove the files of discarded records; return the failures ``(path, error)``."""
    return remove_paths([path for record in records for path in record.removable])


def discard(record: UploadRecord) -> list[tuple[str, BaseException]]:
    """Discard ``record`` whatever its state and remove its files (an upload undone)."""
    with lock:
        record._discarded()
    return remove_paths(record.removable)


# == abandoned uploads ===========================================================================
def _abandon(record: UploadRecord) -> None:
    # A garbage-collector callback: no lock, no I/O (see the module docs).
    if record.unanswered:
        record.state = UploadState.DISCARDED
        _abandoned.extend(record.removable)


def _remove_unclaimed_at_exit() -> None:
    for record in list(_watched):
        if record.unanswered:
            discard(record)
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


__all__ = [
    "SOME_ROW",
    "Answerer",
    "UploadRecord",
    "UploadState",
    "abandoned_count",
    "discard",
    "end_of_transaction",
    "lock",
    "pass_to_parent",
    "remove_abandoned",
    "remove_files",
]
