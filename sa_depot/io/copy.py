"""Copying files from one storage to another, keeping their ids and metadata.

:func:`copy_files` copies every file of a storage (or a given list), one at a time, streaming
each through in chunks. A file keeps its id, filename, content type, last-modification time
and extra metadata. Each copy is verified: the SHA-256 of the bytes the destination stored
must equal the source's checksum (computed while streaming when the source has none, as for
files written by filedepot), and the destination must report that checksum back. A file the
destination already holds with the same checksum is skipped, so an interrupted copy is resumed
by running it again. A file that fails is reported, and the copy goes on with the next one.

This is what ``sa-depot copy`` runs, and what moving a storage to another backend takes::

    report = copy_files(DepotManager.get('old'), DepotManager.get('new'), progress=print)
    assert report.ok, report.failed
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from sa_depot.exceptions import DepotError, FileNotFound
from sa_depot.io.interfaces import FileInfo, FileStorage, StoredFile

Outcome = Literal["copied", "skipped", "failed"]


@dataclass(frozen=True)
class CopyProgress:
    """What :func:`copy_files` reports after each file (for a progress bar)."""

    file_id: str
    outcome: Outcome
    #: Files handled so far (this one included) and in all.
    done: int
    total: int
    #: Bytes written to the destination so far.
    bytes_copied: int
    #: Why the file failed, when it did.
    error: str | None = None


@dataclass
class CopyReport:
    """The ids copied, skipped (already there, same checksum) and failed (id -> reason)."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_copied: int = 0

    @property
    def ok(self) -> bool:
        """Whether every file is now in the destination."""
        return not self.failed


class CopyVerificationError(DepotError):
    """A copied file does not match its source."""


def copy_files(
    source: FileStorage,
    destination: FileStorage,
    file_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[CopyProgress], None] | None = None,
) -> CopyReport:
    """Copy ``file_ids`` (default: every file of ``source``) into ``destination``.

    Files already in ``destination`` with the source's checksum are skipped; files there with
    other content are overwritten. Returns a :class:`CopyReport`; a file that could not be
    copied (missing from the source, an id the destination cannot hold, a storage error, a
    verification failure) is in ``report.failed`` with the reason, and no corrupt copy is left.
    Errors of the storages as a whole (listing the source fails) propagate.
    """
    ids = list(source.list() if file_ids is None else file_ids)
    report = CopyReport()
    for done, file_id in enumerate(ids, start=1):
        error: str | None = None
        try:
            outcome: Outcome = (
                "copied" if _copy_one(source, destination, file_id, report) else "skipped"
            )
        except (DepotError, OSError) as exc:
            outcome, error = "failed", str(exc)
        if outcome == "copied":
            report.copied.append(file_id)
        elif outcome == "skipped":
            report.skipped.append(file_id)
        else:
            report.failed[file_id] = error or "unknown error"
        if progress is not None:
            progress(CopyProgress(file_id, outcome, done, len(ids), report.bytes_copied, error))
    return report


def _copy_one(
    source: FileStorage, destination: FileStorage, file_id: str, report: CopyReport
) -> bool:
    """Copy one file; False when it was already there. Raises on failure."""
    destination.fileid(file_id)  # an id the destination cannot hold fails before any transfer
    source_info = source.info(file_id)
    try:
        existing: FileInfo | None = destination.info(file_id)
    except FileNotFound:
        existing = None
    known = source_info.checksum
    if existing is not None and known and _same(existing, known, source_info.content_length):
        return False
    stored = source.get(file_id)
    try:
        if existing is not None and source_info.checksum is None and existing.checksum:
            # A source without checksum (filedepot's files): hash it to tell whether the
            # destination holds it already.
            digest, length = _hash(stored)
            if _same(existing, digest, length):
                return False
            if stored.seekable():
                stored.seek(0)
            else:
                stored.close()
                stored = source.get(file_id)
        written = destination.write_copy(stored)
    finally:
        stored.close()
    expected = source_info.checksum
    try:
        if expected is not None and written.checksum != expected:
            raise CopyVerificationError(
                f"file {file_id!r}: the content read from {source.description} does not match "
                f"its checksum ({written.checksum} != {expected}); the source may be corrupt"
            )
        stored_info = destination.info(file_id)
        if stored_info.checksum != written.checksum:
            raise CopyVerificationError(
                f"file {file_id!r}: {destination.description} reports checksum "
                f"{stored_info.checksum} for the copy, {written.checksum} expected"
            )
    except (DepotError, OSError):
        _remove_quietly(destination, file_id)
        raise
    report.bytes_copied += written.content_length or 0
    return True


def _same(info: FileInfo, checksum: str, length: int | None) -> bool:
    return info.checksum == checksum and (length is None or info.content_length == length)


def _hash(stored: StoredFile) -> tuple[str, int]:
    digest = hashlib.sha256()
    length = 0
    for chunk in stored.chunks():
        digest.update(chunk)
        length += len(chunk)
    return digest.hexdigest(), length


def _remove_quietly(storage: FileStorage, file_id: str) -> None:
    try:
        storage.delete(file_id)
    except (DepotError, OSError):
        pass  # the failure being reported is the one that matters
