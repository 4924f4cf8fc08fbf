"""Copying files from one storage to another, keeping their ids and metadata.

:func:`copy_files` copies every file of a storage (or a given list), one at a time, streaming
each through in chunks. A file keeps its id, filename, content type, last-modification time
and extra metadata. Each copy is verified: the SHA-256 of the bytes the destination stored
must equal the source's checksum (computed while streaming when the source has none, as for
files written by filedepot), and the copy, read back from the destination, must have that
checksum and the destination must report it. A file the
destination already holds with the same checksum is skipped, so an interrupted copy is resumed
by running it again. A file that fails is reported, and the copy goes on with the next one.
:func:`copy_file` does this for one file; :func:`sa_depot.migrate.move_files` uses it too.

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
from sa_depot.io.interfaces import FileInfo, FileStorage, StoredFile, utcnow

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
    """A copied file does not match its source: ``actual`` is the SHA-256 found where
    ``expected`` was wanted."""

    def __init__(self, message: str, *, expected: str | None, actual: str | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


def copy_files(
    source: FileStorage,
    destination: FileStorage,
    file_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[CopyProgress], None] | None = None,
    dry_run: bool = False,
) -> CopyReport:
    """Copy ``file_ids`` (default: every file of ``source``) into ``destination``.

    With ``dry_run``, nothing is written: the report says what would be copied (and its
    size) and what would be skipped.

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
            result = copy_file(source, destination, file_id, dry_run=dry_run)
            outcome: Outcome = "copied" if result.copied else "skipped"
            if result.copied:
                report.bytes_copied += result.info.content_length or 0
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


@dataclass(frozen=True)
class FileCopy:
    """What :func:`copy_file` did: the destination's file, and whether it wrote it (``False``
    when the destination held it already)."""

    info: FileInfo
    copied: bool


def copy_file(
    source: FileStorage,
    destination: FileStorage,
    file_id: str,
    *,
    new_id: str | None = None,
    expected_checksum: str | None = None,
    keep_last_modified: bool = True,
    dry_run: bool = False,
) -> FileCopy:
    """Copy one file of ``source`` into ``destination``, verified; skip it when the
    destination holds it already with the same checksum.

    :param new_id: the id of the copy (default: ``file_id``), for a destination that cannot
        hold the original id.
    :param expected_checksum: the SHA-256 the content must have (default: the one the source
        records, else the one computed while copying), e.g. the checksum a row records.
    :param keep_last_modified: keep the source's last-modification time (default) or stamp
        the time of the copy (what a copy that rows will reference needs, so that the
        collector's grace period protects it until they do).
    :param dry_run: write nothing; ``copied`` says whether the file would be copied, and
        ``info`` is then the source's.
    :raises FileNotFound: the source has no such file.
    :raises InvalidFileId: the id is malformed for the source, or the destination cannot
        hold it (before any transfer).
    :raises CopyVerificationError: the content does not match the expected checksum, or the
        copy read back does not match the content; the copy is removed.
    """
    source_info = source.info(file_id)  # first: a wrong id is the source's to report
    target_id = destination.fileid(file_id if new_id is None else new_id)
    expected = expected_checksum or source_info.checksum
    try:
        existing: FileInfo | None = destination.info(target_id)
    except FileNotFound:
        existing = None
    if existing is not None and expected and _same(existing, expected, source_info.content_length):
        return FileCopy(existing, copied=False)
    # A source without checksum (filedepot's files) is hashed to tell whether the destination
    # holds it already.
    must_hash = existing is not None and expected is None and bool(existing.checksum)
    if dry_run and not must_hash:
        return FileCopy(source_info, copied=True)
    stored = source.get(file_id)
    try:
        if existing is not None and must_hash:
            digest, length = _hash(stored)
            if _same(existing, digest, length):
                return FileCopy(existing, copied=False)
            if dry_run:
                return FileCopy(source_info, copied=True)
            if stored.seekable():
                stored.seek(0)
            else:
                stored.close()
                stored = source.get(file_id)
        written = destination.write_copy(
            stored, file_id=target_id, last_modified=None if keep_last_modified else utcnow()
        )
    finally:
        stored.close()
    try:
        _verify(destination, written, file_id, expected, source.description)
    except (DepotError, OSError):
        _remove_quietly(destination, target_id)
        raise
    return FileCopy(written, copied=True)


def _verify(
    destination: FileStorage,
    written: FileInfo,
    source_id: str,
    expected: str | None,
    source_description: str,
) -> None:
    """Check what was written against ``expected``, then read the copy back."""
    if expected is not None and written.checksum != expected:
        raise CopyVerificationError(
            f"file {source_id!r}: the content read from {source_description} does not match "
            f"its checksum ({written.checksum} != {expected}); the source may be corrupt",
            expected=expected,
            actual=written.checksum,
        )
    with destination.get(written.file_id) as copy:
        reported = copy.checksum
        digest, length = _hash(copy)
    if reported != written.checksum or digest != written.checksum:
        raise CopyVerificationError(
            f"file {source_id!r}: the copy in {destination.description} reads back with "
            f"SHA-256 {digest} ({length} bytes) and reports {reported}; "
            f"{written.checksum} expected",
            expected=written.checksum,
            actual=digest if digest != written.checksum else reported,
        )


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
