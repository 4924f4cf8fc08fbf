"""Files on the local disk, written atomically and spread over sharded directories.

Layout of ``storage_path``::

    1b/4e/1b4e28ba-2fa1-41d2-883f-0016d3cca427.json              the metadata: the commit point
    1b/4e/1b4e28ba-2fa1-41d2-883f-0016d3cca427.9f86d081884c7d65  the content (a "blob")
    1b/4e/1b4e28ba-2fa1-41d2-883f-0016d3cca427.json.<hex>.tmp    metadata being written
    6ba7b810-9dad-11d1-80b4-00c04fd430c8/file                    a file written by filedepot
    6ba7b810-9dad-11d1-80b4-00c04fd430c8/metadata.json           ... and its metadata
    keys/acme/2026/11/1b4e28ba-2fa1-41d2-883f-0016d3cca427.pdf.json   a file with a readable key
    keys/acme/2026/11/1b4e28ba-2fa1-41d2-883f-0016d3cca427.pdf.9f86d081884c7d65

The two directory levels come from the first four hex digits of the id, so that a million
files make 65,536 directories of about 15 entries rather than one huge directory. In the ids
the storage makes (:meth:`LocalFileStorage.new_file_id`) these digits count ten-second
periods, modulo 65,536: the files created within one period share a directory, and only the
period's first create makes one. At a steady rate the directories fill evenly over the cycles;
a burst puts up to ten seconds' worth of creates in one directory (file systems index large
directories: a create costs the same in a directory of 120,000 entries, measured on ext4).
A file named by a readable key (:mod:`sa_depot.io.keys`, ``acme/2026/11/<uuid>.pdf``) lives
under ``keys/``, in the directories its key names: the same metadata and blob, written the same
way. Directories a key made stay when its files are deleted (removing them could race with a
write into them).

**How a write stays atomic.** The metadata file names the blob it describes
(``{"blob": "<id>.<hex>", "filename": ..., "checksum": ...}``).
:meth:`create` and :meth:`replace` stream the content into a *new* blob under a name nobody
knows yet and write the new metadata into a temporary file in the same directory. Then they
fsync, all at once, the blob, its directory (so that the blob's entry persists), the parents of
any directory the write made, and the temporary file, and wait for every one of these flushes:
none has to come before another, so their waits for the disk overlap (a few threads of the
storage run them beside the writing one). Only then does :func:`os.replace` swap in the
metadata (the commit point), the directory is fsynced again so that the rename persists, and
the blob the old metadata named is removed. The metadata thus never names a blob whose content
or directory entry a power loss could still take away. A reader reads the metadata, then opens
the blob it names, so it sees one version or the other, never a mix, and a reader that opened
the old blob keeps reading it to the end (POSIX keeps an unlinked file alive while it is open).
A blob is never renamed: its unique name only becomes reachable once the metadata names it, so
it needs no temporary name of its own.

**What an interruption leaves.** An exception (a full disk, an input stream failing half way, a
flush failing in whichever thread) removes everything the write created and leaves the previous
version intact. A process killed mid-write can leave an unreferenced blob or a ``.tmp`` file:
both are invisible (``list``, ``get`` and ``exists`` ignore them) and
:meth:`LocalFileStorage.remove_incomplete`, which the collector calls, deletes them once they
are older than a grace period. Two concurrent :meth:`replace` calls on one id are
last-writer-wins; the blob of the loser is left for ``remove_incomplete`` too.

**filedepot compatibility.** Files written by filedepot's ``LocalFileStorage``
(``<id>/file`` and ``<id>/metadata.json``) are read, listed, replaced (the new version is
written in the layout above and the old directory removed) and deleted.

``fsync=False`` skips every fsync (and starts no thread): writes are still atomic for other
processes, but a power loss may lose files whose commit was reported. On macOS ``os.fsync``
does not flush the drive's own cache; use a file system or mount options that do if that
matters.

Written for POSIX file semantics (Linux, macOS, BSD): a reader keeps an unlinked file open, and
a rename replaces its target atomically. It is not tested on Windows.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import queue
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from sa_depot.exceptions import (
    ConfigurationError,
    CorruptMetadata,
    FileNotFound,
    InvalidFileId,
    StorageError,
)
from sa_depot.io.interfaces import (
    DEFAULT_CHUNK_SIZE,
    FileInfo,
    FileStorage,
    IncomingContent,
    StoredFile,
)
from sa_depot.io.keys import is_valid_key

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["LocalFileStorage", "LocalStoredFile"]

_log = logging.getLogger(__name__)

_SHARD_RE = re.compile(r"\A[0-9a-f]{2}\Z")
#: ``<id>.<16 hex digits>``: a blob.
_BLOB_RE = re.compile(r"\A(?P<file_id>.+)\.[0-9a-f]{16}\Z")
#: Ids that cannot lead outside the storage, whatever the OS: no separator, drive or NUL, and
#: no dot among the four characters that name the shard directories (so no ``..``).
_PLAIN_ID_RE = re.compile(r"\A[0-9A-Za-z_-]{4}[0-9A-Za-z_.-]*\Z")
_UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
#: The directory, under the storage's, of the files named by readable keys.
_KEYS_DIR = "keys"
_METADATA_SUFFIX = ".json"
_TMP_SUFFIX = ".tmp"
_LEGACY_DATA = "file"
_LEGACY_METADATA = "metadata.json"
#: How often a reader looks again when the blob it was told about has just been replaced.
_OPEN_ATTEMPTS = 3
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows
#: Bytes asked for at a time when reading a metadata file (they are far smaller).
_METADATA_READ = 64 * 1024
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: How a write creates a file: a new one only, never one that exists.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY
#: What a plain path component may not hold.
_SEPARATORS = frozenset({os.sep, os.altsep or os.sep, "\0"})

#: Seconds whose new files share a shard directory (see :meth:`LocalFileStorage.new_file_id`).
SHARD_PERIOD = 10
#: The bits of a new id left random: all but the period (the first 16), the version (4) and
#: the variant (2).
_RANDOM_BITS = ((1 << 112) - 1) & ~(0xF << 76) & ~(0x3 << 62)
#: Version 8 and the RFC 9562 variant, in place.
_VERSION_8 = 0x8 << 76 | 0x2 << 62

#: Chunks from which a create hashes in a second thread while it writes (smaller contents
#: would spend more on the thread hand-offs than they save).
_PIPELINED_CHUNKS = 4

#: Threads a storage flushes files in, besides the writing thread: a write has its blob, its
#: directory and the parents of the directories it made flushed there while it flushes its
#: metadata itself.
_FLUSHING_THREADS = 3

#: What to do about the errors a disk commonly reports.
_ERRNO_ADVICE = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some space or raise the disk quota",
    errno.EACCES: "give the user running this process read and write access to it",
    errno.EPERM: "give the user running this process read and write access to it",
    errno.EROFS: "mount the file system read-write",
}


class LocalStoredFile(StoredFile):
    """A file of a :class:`LocalFileStorage`: a real, seekable file opened for reading."""

    def __init__(self, info: FileInfo, fileobj: io.FileIO, path: str) -> None:
        super().__init__(info)
        self._file = fileobj
        self._path = path

    @property
    def local_path(self) -> str:
        """The path of the content on disk (for ``sendfile`` or ``X-Accel-Redirect``)."""
        return self._path

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._file.readinto(buffer)

    def read(self, size: int | None = -1) -> bytes:
        # Straight to the file: RawIOBase.read would read into a bytearray and copy it into
        # bytes, one more copy of every chunk (a third of a streamed read's time).
        data = self._file.read(-1 if size is None else size)
        return data if data is not None else b""

    def readall(self) -> bytes:
        return self._file.readall()

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class _Paths(NamedTuple):
    """Where the pieces of one file id live (a tuple: built on every get and write)."""

    file_id: str
    directory: str
    metadata: str
    #: Where filedepot kept this id (``None`` for a key: filedepot wrote none).
    legacy_directory: str | None
    #: The name the blobs of this id start with: the id, or the last part of a key.
    name: str

    @property
    def legacy_metadata(self) -> str:
        return os.path.join(self._legacy(), _LEGACY_METADATA)

    @property
    def legacy_data(self) -> str:
        return os.path.join(self._legacy(), _LEGACY_DATA)

    def _legacy(self) -> str:
        if self.legacy_directory is None:
            raise RuntimeError(f"{self.file_id!r} is a key: filedepot never stored it")
        return self.legacy_directory

    def blob(self, name: str) -> str:
        return f"{self.directory}{os.sep}{name}"


class _Located(NamedTuple):
    """A committed file found on disk: its metadata and where its content is."""

    info: FileInfo
    data_path: str
    raw_metadata: bytes | None  # the new layout's metadata file as read; None for legacy


class LocalFileStorage(FileStorage):
    """Stores files under ``storage_path`` on the local disk.

    :param storage_path: the directory holding the files; created (with its parents) if
        missing, unless ``create_directory`` is false. Nothing else is done until the first write.
    :param fsync: flush content, metadata and directory entries to the disk before a write
        returns, so that committed files survive a power loss. The flushes a write needs
        before its commit run concurrently, in up to three threads that the storage starts on
        its first write (and again in a forked child). ``False`` is faster and still atomic
        for every reader, but not durable.
    :param chunk_size: bytes read and written at a time; memory use stays near this.
    :param create_directory: ``False`` creates nothing: when ``storage_path`` does not exist,
        listing and writing raise :class:`~sa_depot.exceptions.StorageError` and reading a
        file raises :class:`~sa_depot.exceptions.FileNotFound`, both saying so, so that a
        mistyped path is not taken for an empty storage (what ``sa-depot ls`` uses).

    Safe to share between threads and between processes on the same directory.
    """

    create_nothing_options = {"create_directory": False}

    def __init__(
        self,
        storage_path: str | os.PathLike[str],
        fsync: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        create_directory: bool = True,
    ) -> None:
        if chunk_size < 1:
            raise ConfigurationError(
                f"chunk_size must be a positive number of bytes, not {chunk_size}"
            )
        #: The directory as configured (``'./files'`` stays relative, as in filedepot).
        self.storage_path = os.fspath(storage_path)
        #: The same directory as an absolute path, resolved once: files stay where they were
        #: even if the process changes its working directory later.
        self.root = os.path.abspath(self.storage_path)
        self.fsync = fsync
        self.chunk_size = chunk_size
        self.create_directory = create_directory
        #: What flushes a write's files concurrently (``fsync`` only; made on first use).
        self._flushing: _FlushingThreads | None = None
        if create_directory:
            with self._disk("create the storage directory", self.root):
                os.makedirs(self.root, exist_ok=True)

    @property
    def description(self) -> str:
        return f"{super().description} at {self.root!r}"

    def new_file_id(self) -> str:
        """A fresh id: a UUID whose first four hex digits, which name the two shard
        directories it goes to, count the :data:`SHARD_PERIOD` seconds since the epoch modulo
        65,536 (a cycle of about 7.6 days), and whose 106 other bits are random (a version-8
        UUID, RFC 9562 section 5.8).

        The files created within one period share a shard directory, so that only the
        period's first create makes one: with random ids, almost every create of a storage's
        first hundred thousand files made one or two directories, whose metadata the next
        fsync on the disk (the storage's, or the database's commit) had to write too; that
        put sa_depot's ORM inserts behind filedepot's on a new storage. At a steady rate the
        65,536 directories fill as evenly as with random ids across cycles (a cycle is not a
        whole number of days, so busy hours fall on other directories in the next one); a
        burst of creates puts up to a period's worth of files in one directory. The id shows
        the period of its creation, as filedepot's version-1 UUIDs showed the time and the
        host. Ids of any other form are read as before.
        """
        period = int(time.time()) // SHARD_PERIOD & 0xFFFF
        value = int.from_bytes(os.urandom(16), "big") & _RANDOM_BITS
        return str(uuid.UUID(int=value | period << 112 | _VERSION_8))

    # -- the primitives ----------------------------------------------------------------------
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        paths = self._paths(content.info.file_id)
        added_to = self._make_directories(paths.directory)
        blob_name = f"{paths.name}.{secrets.token_hex(8)}"
        blob_path = paths.blob(blob_name)
        tmp = f"{paths.metadata}.{secrets.token_hex(8)}{_TMP_SUFFIX}"
        blob_fd = tmp_fd = -1  # open while >= 0
        previous: _Located | None = None
        renaming = swapped = False
        try:
            blob_fd = self._create_exclusive(blob_path)
            self._write_content(content, blob_fd, blob_path)
            record = {"blob": blob_name, **content.info.to_dict()}
            tmp_fd = self._create_exclusive(tmp)
            self._write_all(tmp_fd, tmp, json.dumps(record).encode("utf-8"))
            if self.fsync:  # all of it durable before the rename makes the metadata name it
                self._flush_before_commit(
                    blob_fd, blob_path, tmp_fd, tmp, (*added_to, paths.directory)
                )
            self._check_linked(blob_fd, blob_path)
            fd, blob_fd = blob_fd, -1
            self._close(fd, blob_path)
            fd, tmp_fd = tmp_fd, -1
            self._close(fd, tmp)
            previous = self._previous_version(paths) if replace else None
            renaming = True
            try:
                os.replace(tmp, paths.metadata)  # the commit point
            except OSError as exc:
                renaming = False  # it failed: a missing tmp then says nothing about a rename
                raise self._failure("commit the metadata", paths.metadata, exc) from exc
            swapped = True
            if self.fsync:
                self._sync_directory(paths.directory)
        except BaseException:
            if renaming and not swapped and not os.path.lexists(tmp):
                # interrupted (Ctrl-C) between the rename and the line after it: the rename
                # happened, so it is undone, or the metadata would name a blob removed below
                swapped = True
            if blob_fd >= 0:
                _close_quietly(blob_fd)
            if tmp_fd >= 0:
                _close_quietly(tmp_fd)
            _remove_quietly(tmp)
            if swapped:
                self._restore_metadata(paths, previous)
            _remove_quietly(blob_path)
            raise
        if previous is not None:
            if previous.raw_metadata is None:  # a filedepot file, now superseded
                self._remove_legacy(paths, quietly=True)
            elif previous.data_path != blob_path:
                _remove_quietly(previous.data_path)

    def _write_content(self, content: IncomingContent, fd: int, path: str) -> None:
        """Write all of ``content`` to ``fd``, hashing it on the way.

        A content of at least :data:`_PIPELINED_CHUNKS` chunks readable at any offset (a file
        on disk, bytes, a spooled upload) is hashed by a second thread while this one reads
        and writes it: both release the GIL, so on two cores a large create takes the time of
        the longer of the two rather than of both. Anything else is read, hashed
        and written one chunk after another. Errors of the input stream propagate unchanged.
        """
        source = content.random_access()
        if source is not None and source.length >= _PIPELINED_CHUNKS * content.chunk_size:
            content.read_through(source, also=lambda chunk: self._write_all(fd, path, chunk))
            return
        for chunk in content.chunks():
            self._write_all(fd, path, chunk)

    def _previous_version(self, paths: _Paths) -> _Located | None:
        """The version a replace supersedes; ``None`` if absent or unreadable (then it is
        simply overwritten, and remove_incomplete collects its blob)."""
        try:
            return self._locate(paths)
        except StorageError as exc:
            _log.warning("replacing %s, whose metadata is unreadable: %s", paths.metadata, exc)
            return None

    def _open(self, file_id: str) -> StoredFile:
        paths = self._paths(file_id)
        missing: str | None = None
        for _ in range(_OPEN_ATTEMPTS):
            located = self._locate(paths)
            if located is None:
                raise FileNotFound(self.description, file_id, self._missing_directory())
            try:
                fileobj = io.FileIO(located.data_path, "rb")
            except FileNotFoundError:
                # Replaced or deleted between reading the metadata and opening the blob.
                missing = located.data_path
                continue
            except OSError as exc:
                raise self._failure("open", located.data_path, exc) from exc
            return LocalStoredFile(located.info, fileobj, located.data_path)
        raise StorageError(
            self.description,
            f"the metadata of file {file_id!r} names {missing!r}, which does not exist: the "
            "directory was changed outside sa_depot. Restore the content or delete the file.",
        )

    def _delete(self, file_id: str) -> None:
        paths = self._paths(file_id)
        try:
            located = self._locate(paths, legacy=False)
        except StorageError:  # damaged metadata: delete it anyway, the sweep finds the blob
            located = None
        with self._disk("delete", paths.metadata):
            try:
                os.unlink(paths.metadata)  # the commit point of a delete
            except (FileNotFoundError, NotADirectoryError):
                pass
            else:
                if self.fsync:
                    self._sync_directory(paths.directory)
        if located is not None:
            _remove_quietly(located.data_path)
        self._remove_legacy(paths, quietly=False)

    def _exists(self, file_id: str) -> bool:
        paths = self._paths(file_id)
        if self._is_file(paths.metadata):
            return True
        return paths.legacy_directory is not None and self._is_file(paths.legacy_metadata)

    def _iter_ids(self) -> Iterator[str]:
        self._check_directory()
        for name in self._scan(self.root):
            path = os.path.join(self.root, name)
            if _SHARD_RE.match(name):
                for sub in self._scan(path):
                    if _SHARD_RE.match(sub):
                        yield from self._ids_in_shard(os.path.join(path, sub), name + sub)
            elif name == _KEYS_DIR:
                yield from self._keyed_ids(path, "")
            elif self.is_valid_id(name) and self._is_legacy_file(name):
                yield name

    def _keyed_ids(self, directory: str, key_prefix: str) -> Iterator[str]:
        """The keys of the files under ``directory`` of ``keys/``, whose key starts with
        ``key_prefix``; directory by directory, so that memory holds one listing."""
        subdirectories: list[str] = []
        for name in self._scan(directory):
            if name.endswith(_METADATA_SUFFIX):
                file_id = key_prefix + name[: -len(_METADATA_SUFFIX)]
                if is_valid_key(file_id) and not _UUID_RE.match(file_id):
                    yield file_id
            elif not name.startswith(".") and os.path.isdir(os.path.join(directory, name)):
                subdirectories.append(name)
        for name in subdirectories:
            yield from self._keyed_ids(os.path.join(directory, name), f"{key_prefix}{name}/")

    # -- maintenance -------------------------------------------------------------------------
    def remove_incomplete(self, older_than: timedelta = timedelta(hours=1)) -> list[str]:
        """Delete what interrupted writes left behind; return the paths removed.

        Removes unreferenced blobs, ``.tmp`` files and filedepot directories without metadata
        that were last modified more than ``older_than`` ago. Committed files and files this
        storage does not know are never touched. The grace period must exceed the longest time
        an upload may stall between two chunks, since an upload in progress looks like a
        leftover.
        """
        cutoff = time.time() - older_than.total_seconds()
        removed: list[str] = []
        for name in self._scan(self.root):
            path = os.path.join(self.root, name)
            if _SHARD_RE.match(name):
                for sub in self._scan(path):
                    if _SHARD_RE.match(sub):
                        removed.extend(self._remove_incomplete_in(os.path.join(path, sub), cutoff))
            elif name == _KEYS_DIR:
                for directory, key_prefix in self._keyed_directories(path, ""):
                    removed.extend(self._remove_incomplete_in(directory, cutoff, key_prefix))
            elif (
                self.is_valid_id(name)
                and os.path.isdir(path)
                and not os.path.exists(os.path.join(path, _LEGACY_METADATA))
                and _modified_before(path, cutoff)
                and all(_modified_before(os.path.join(path, n), cutoff) for n in self._scan(path))
            ):
                with self._disk("remove the incomplete directory", path):
                    shutil.rmtree(path)
                removed.append(path)
        return removed

    def _keyed_directories(self, directory: str, key_prefix: str) -> Iterator[tuple[str, str]]:
        """``(directory, key prefix)`` of ``directory`` of ``keys/`` and every one below."""
        yield directory, key_prefix
        for name in self._scan(directory):
            path = os.path.join(directory, name)
            if not name.startswith(".") and os.path.isdir(path):
                yield from self._keyed_directories(path, f"{key_prefix}{name}/")

    def _remove_incomplete_in(
        self, directory: str, cutoff: float, key_prefix: str = ""
    ) -> list[str]:
        removed: list[str] = []
        for name in self._scan(directory):
            path = os.path.join(directory, name)
            blob = _BLOB_RE.match(name)
            if name.endswith(_TMP_SUFFIX):
                leftover = True
            elif blob is not None and self.is_valid_id(key_prefix + blob["file_id"]):
                try:
                    located = self._locate(self._paths(key_prefix + blob["file_id"]), legacy=False)
                except StorageError:  # damaged metadata: never risk deleting its content
                    continue
                leftover = located is None or located.data_path != path
            else:
                leftover = False
            if leftover and _modified_before(path, cutoff):
                with self._disk("remove the leftover", path):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        continue
                removed.append(path)
        return removed

    # -- paths -------------------------------------------------------------------------------
    def _paths(self, file_id: str) -> _Paths:
        """Where ``file_id`` lives; refuses any id that would lead outside the storage.

        The base class has already validated the id; this is a second line of defence for
        subclasses with other id policies.
        """
        if not _UUID_RE.match(file_id) and is_valid_key(file_id):
            # no part is empty, '.', '..' nor holds a separator: it stays under keys/
            *directories, name = file_id.split("/")
            directory = os.path.join(self.root, _KEYS_DIR, *directories)
            return _Paths(
                file_id=file_id,
                directory=directory,
                metadata=os.path.join(directory, name + _METADATA_SUFFIX),
                legacy_directory=None,
                name=name,
            )
        if _PLAIN_ID_RE.match(file_id) is not None:
            # the checks below cost a third of a small file's get(); os.path.join too
            sep, root = os.sep, self.root.rstrip(os.sep)  # "/" joins as "" + "/ab"
            directory = f"{root}{sep}{file_id[:2]}{sep}{file_id[2:4]}"
            return _Paths(
                file_id,
                directory,
                f"{directory}{sep}{file_id}{_METADATA_SUFFIX}",
                f"{root}{sep}{file_id}",
                file_id,
            )
        if not file_id or file_id in {".", ".."} or any(s in file_id for s in _SEPARATORS):
            raise InvalidFileId(self.description, file_id, "a single path component")
        directory = os.path.join(self.root, file_id[:2], file_id[2:4])
        legacy_directory = os.path.join(self.root, file_id)
        paths = _Paths(
            file_id=file_id,
            directory=directory,
            metadata=os.path.join(directory, file_id + _METADATA_SUFFIX),
            legacy_directory=legacy_directory,
            name=file_id,
        )
        for path in (paths.metadata, legacy_directory):
            resolved = os.path.normpath(path)
            inside = os.path.commonpath([self.root, resolved]) == self.root
            if not inside or resolved == self.root:
                raise InvalidFileId(
                    self.description, file_id, "an id that stays inside the storage directory"
                )
        return paths

    # -- reading -----------------------------------------------------------------------------
    def _locate(self, paths: _Paths, *, legacy: bool = True) -> _Located | None:
        """The committed file at ``paths``, or ``None``; the new layout wins over filedepot's."""
        read = self._read_metadata(paths.metadata)
        file_id = paths.file_id
        if read is not None:
            raw, record = read
            blob = record.get("blob")
            if not isinstance(blob, str) or _BLOB_RE.match(blob) is None:
                raise CorruptMetadata(
                    self.description,
                    f"the metadata file {paths.metadata!r} names no valid blob: it was changed "
                    "outside sa_depot. Restore it or delete the file.",
                )
            info = self._info(file_id, paths.metadata, record)
            return _Located(info, paths.blob(blob), raw)
        if not legacy or paths.legacy_directory is None:
            return None
        read = self._read_metadata(paths.legacy_metadata)
        if read is None:
            return None
        info = self._info(file_id, paths.legacy_metadata, read[1])
        return _Located(info, paths.legacy_data, None)

    def _read_metadata(self, path: str) -> tuple[bytes, dict[str, Any]] | None:
        """The metadata file at ``path`` as read and as parsed; ``None`` if it is absent.

        :raises CorruptMetadata: it is not a JSON object.
        """
        raw = self._read_if_exists(path, to_the_end=False)
        if raw is None:
            return None
        record = _json_object(raw)
        if record is None:  # perhaps a short read that was not the end: read it all again
            raw = self._read_if_exists(path)
            record = None if raw is None else _json_object(raw)
        if raw is None:  # deleted meanwhile
            return None
        if record is None:
            raise CorruptMetadata(
                self.description,
                f"the metadata file {path!r} is not a JSON object: it was damaged outside "
                "sa_depot (or by a power loss with fsync=False). Restore it or delete the file.",
            )
        return raw, record

    def _read_if_exists(self, path: str, *, to_the_end: bool = True) -> bytes | None:
        """The content of the file at ``path``, ``None`` if it is absent.

        With ``to_the_end`` false, a first read shorter than asked is taken for the whole
        file (what a regular file gives), which saves the read that would return nothing;
        the caller checks what it got and calls again with ``to_the_end`` if it is cut.
        """
        # os.open and os.read: a metadata file is read on every get, and a buffered file
        # object around it would cost more than the read itself
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_BINARY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._failure("read", path, exc) from exc
        try:
            piece = os.read(fd, _METADATA_READ)
            if not to_the_end and len(piece) < _METADATA_READ:
                return piece
            pieces = [piece]
            while piece := os.read(fd, _METADATA_READ):
                pieces.append(piece)
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        except OSError as exc:
            raise self._failure("read", path, exc) from exc
        finally:
            os.close(fd)

    def _info(self, file_id: str, path: str, record: dict[str, Any]) -> FileInfo:
        try:
            return FileInfo.from_dict(file_id, record)
        except (ValueError, TypeError) as exc:  # a malformed date, a list for the name...
            raise CorruptMetadata(
                self.description,
                f"the metadata file {path!r} holds an invalid value ({exc}): it was changed "
                "outside sa_depot. Restore it or delete the file.",
            ) from exc

    def _is_file(self, path: str) -> bool:
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._failure("inspect", path, exc) from exc
        return True

    def _is_legacy_file(self, file_id: str) -> bool:
        paths = self._paths(file_id)
        return self._is_file(paths.legacy_metadata) and not self._is_file(paths.metadata)

    def _scan(self, directory: str) -> list[str]:
        """The names in ``directory`` (empty if it vanished or is not a directory)."""
        try:
            with os.scandir(directory) as entries:
                return [entry.name for entry in entries]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise self._failure("list", directory, exc) from exc

    def _ids_in_shard(self, directory: str, prefix: str) -> list[str]:
        ids = []
        for name in self._scan(directory):
            if name.endswith(_METADATA_SUFFIX):
                file_id = name[: -len(_METADATA_SUFFIX)]
                if self.is_valid_id(file_id) and file_id[:4] == prefix:
                    ids.append(file_id)
        return ids

    # -- writing -----------------------------------------------------------------------------
    # The steps of a write turn an OSError into a StorageError with ``try``/``except`` rather
    # than ``with self._disk(...)``: a small create takes about ten of them, and a context
    # manager costs three calls each where a ``try`` costs nothing until something fails.
    def _check_linked(self, fd: int, path: str) -> None:
        """Refuse a blob that was unlinked while it was being written."""
        try:
            unlinked = os.fstat(fd).st_nlink == 0
        except OSError as exc:
            raise self._failure("write", path, exc) from exc
        if unlinked:
            raise StorageError(
                self.description,
                f"{path!r} was deleted while it was being written; is "
                "remove_incomplete() running with too short a grace period?",
            )

    def _create_exclusive(self, path: str) -> int:
        try:
            return os.open(path, _CREATE_FLAGS, 0o666)
        except OSError as exc:
            raise self._failure("create", path, exc) from exc

    def _write_all(self, fd: int, path: str, data: bytes | memoryview) -> None:
        try:
            written = os.write(fd, data)
            if written < len(data):  # a short write: write the rest
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(fd, view) :]
        except OSError as exc:
            raise self._failure("write", path, exc) from exc

    def _close(self, fd: int, path: str) -> None:
        try:
            os.close(fd)
        except OSError as exc:
            raise self._failure("close", path, exc) from exc

    def _flush_before_commit(
        self, blob_fd: int, blob_path: str, tmp_fd: int, tmp: str, directories: tuple[str, ...]
    ) -> None:
        """fsync the blob, ``directories`` (the blob's and those that got a new directory) and
        the metadata's temporary file, concurrently; return once all of them are durable.

        None of them needs another first: they only have to be done before the rename, and
        fsyncs issued together overlap their waits (on ext4 they can share one journal
        commit), where one after the other each waits for the disk alone.

        :raises StorageError: a flush failed (the first failing one in the order blob,
            directories, temporary file), once the others have finished.
        """
        jobs = [(blob_fd, "write", blob_path)]
        opened: list[int] = []
        try:
            if os.name != "nt":  # directories cannot be opened on Windows; NTFS journals renames
                for directory in directories:
                    try:
                        fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
                    except OSError as exc:
                        raise self._failure("flush the directory", directory, exc) from exc
                    opened.append(fd)
                    jobs.append((fd, "flush the directory", directory))
            jobs.append((tmp_fd, "write", tmp))
            self._fsync_all(jobs)
        finally:
            for fd in opened:
                _close_quietly(fd)

    def _fsync_all(self, jobs: list[tuple[int, str, str]]) -> None:
        """fsync the ``(fd, action, path)`` of ``jobs``: all but the last in the flushing
        threads while they are free, the rest in this thread; once all have finished, raise
        the first failure as a StorageError saying ``cannot <action> <path>``."""
        threads = self._flushing_threads()
        futures = []
        errors: list[BaseException | None] = [None] * len(jobs)
        try:
            for index in range(len(jobs) - 1):
                future = threads.submit(jobs[index][0])
                if future is None:  # every thread busy: flush the rest here
                    break
                futures.append(future)
            for index in range(len(futures), len(jobs)):
                try:
                    os.fsync(jobs[index][0])
                except OSError as exc:
                    errors[index] = exc
        finally:
            for index, future in enumerate(futures):
                # waits for it: no fd may be closed while a thread may still flush it
                errors[index] = future.exception()
        for (_, action, path), error in zip(jobs, errors, strict=True):
            if isinstance(error, OSError):
                raise self._failure(action, path, error) from error
            if error is not None:
                raise error

    def _flushing_threads(self) -> _FlushingThreads:
        """This storage's flushing threads, made on first use, and again in a forked child:
        an executor inherited across a fork has no threads and would never run a job."""
        threads = self._flushing
        if threads is None or threads.pid != os.getpid():
            # two threads' first writes may both get here: the one replaced ends when unused
            threads = self._flushing = _FlushingThreads()
        return threads

    def _restore_metadata(self, paths: _Paths, previous: _Located | None) -> None:
        """Best-effort undo of a metadata swap whose directory fsync failed."""
        if previous is None or previous.raw_metadata is None:
            _remove_quietly(paths.metadata)
            return
        tmp = f"{paths.metadata}.{secrets.token_hex(8)}{_TMP_SUFFIX}"
        try:
            with open(tmp, "xb") as fileobj:
                fileobj.write(previous.raw_metadata)
            os.replace(tmp, paths.metadata)
        except OSError as exc:
            _remove_quietly(tmp)
            _log.error("could not restore the metadata %s after a failed write: %s", tmp, exc)

    def _make_directories(self, directory: str) -> tuple[str, ...]:
        """Make ``directory`` and its missing parents; return the directories that got a new
        entry, to be flushed with the write (nothing with ``fsync=False``)."""
        # One system call when the directory exists or only its leaf is new (most creates):
        # the mkdir itself says which, where a stat first would cost one more.
        try:
            os.mkdir(directory)
        except FileExistsError:
            return ()
        except FileNotFoundError:
            made = False
        except OSError as exc:
            raise self._failure("create the directory", directory, exc) from exc
        else:
            made = True
        if made:
            return (os.path.dirname(directory),) if self.fsync else ()
        # its parents are new too (a new shard, a key's folders), or the storage is missing
        self._check_directory()
        missing = [directory]
        while not os.path.isdir(os.path.dirname(missing[-1])) and missing[-1] != self.root:
            missing.append(os.path.dirname(missing[-1]))
        added_to = []
        for path in reversed(missing):
            with self._disk("create the directory", path):
                try:
                    os.mkdir(path)
                except FileExistsError:
                    continue
            if self.fsync:
                added_to.append(os.path.dirname(path))
        return tuple(added_to)

    def _sync_directory(self, directory: str) -> None:
        """fsync a directory so that the entries just added to or removed from it persist."""
        if os.name == "nt":  # directories cannot be opened on Windows; NTFS journals renames
            return
        with self._disk("flush the directory", directory):
            fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _remove_legacy(self, paths: _Paths, *, quietly: bool) -> None:
        """Delete a filedepot file: its metadata first (then it is gone), then the rest."""
        if paths.legacy_directory is None or not os.path.isdir(paths.legacy_directory):
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(paths.legacy_metadata)
            shutil.rmtree(paths.legacy_directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if not quietly:
                raise self._failure("delete", paths.legacy_directory, exc) from exc
            _log.warning("could not remove %s: %s", paths.legacy_directory, exc)

    def _check_directory(self) -> None:
        """With ``create_directory=False``, refuse to list or write a missing directory."""
        missing = self._missing_directory()
        if missing is not None:
            raise StorageError(self.description, missing)

    def _missing_directory(self) -> str | None:
        """What is wrong when the storage directory is missing and may not be created."""
        if self.create_directory or os.path.isdir(self.root):
            return None
        return (
            "the storage directory does not exist (nothing was created): check storage_path, "
            "or create the directory"
        )

    # -- errors ------------------------------------------------------------------------------
    def _disk(self, action: str, path: str) -> _DiskErrors:
        """Turn an ``OSError`` of the disk into a :class:`StorageError` saying what failed."""
        return _DiskErrors(self, action, path)

    def _failure(self, action: str, path: str, exc: OSError) -> StorageError:
        cause = exc.strerror or str(exc)
        if exc.errno is not None and exc.errno in errno.errorcode:
            cause = f"{cause} ({errno.errorcode[exc.errno]})"
        advice = _ERRNO_ADVICE.get(exc.errno or 0)
        message = f"cannot {action} {path!r}: {cause}"
        return StorageError(self.description, f"{message}; {advice}" if advice else message)


class _DiskErrors:
    """The context of :meth:`LocalFileStorage._disk`: a class, not a generator, because a
    create enters about ten of them."""

    __slots__ = ("action", "path", "storage")

    def __init__(self, storage: LocalFileStorage, action: str, path: str) -> None:
        self.storage, self.action, self.path = storage, action, path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise self.storage._failure(self.action, self.path, exc) from exc


class _FlushingThreads:
    """A few threads that fsync files for the writes of one storage in one process.

    A job never waits for a thread: when all are busy (many threads writing at once), the
    writing thread flushes the file itself, as it would without them. The threads are the
    executor's: idle ones end when the storage is garbage-collected, and at interpreter exit
    the executor joins them after their current fsync (a write at exit flushes in its own
    thread).
    """

    __slots__ = ("executor", "free", "pid")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.executor = ThreadPoolExecutor(_FLUSHING_THREADS, "sa-depot-fsync")
        #: One token per thread without a job: a semaphore whose every step is one C call.
        self.free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(_FLUSHING_THREADS):
            self.free.put(None)

    def submit(self, fd: int) -> Future[None] | None:
        """fsync ``fd`` in a thread; ``None`` if none is free (the caller flushes it)."""
        try:
            self.free.get_nowait()
        except queue.Empty:
            return None
        try:
            return self.executor.submit(self._fsync, fd)
        except RuntimeError:  # the interpreter is exiting: no new jobs
            self.free.put(None)
            return None

    def _fsync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        finally:
            self.free.put(None)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` parsed as a JSON object, or ``None`` if it is not one."""
    try:
        # as text: json.loads would first sniff bytes for UTF-16 and UTF-32, which no
        # metadata file is written in (it is ASCII JSON; a UTF-8 decoding error is a
        # ValueError, so damaged bytes count as damaged metadata all the same)
        record = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _remove_quietly(path: str) -> None:
    """Remove a file that must not stay behind, when an error is already being reported."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _log.warning("could not remove %s (remove_incomplete will): %s", path, exc)


def _close_quietly(fd: int) -> None:
    """Close ``fd`` while another exception is being reported (which must stay the one seen)."""
    with contextlib.suppress(OSError):
        os.close(fd)


def _modified_before(path: str, cutoff: float) -> bool:
    try:
        return os.lstat(path).st_mtime < cutoff
    except FileNotFoundError:
        return False
