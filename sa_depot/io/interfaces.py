"""The storage contract: :class:`FileStorage` and :class:`StoredFile`.

A storage backend implements a handful of small primitives (``_write``, ``_open``, ``_delete``,
``_exists``, ``_iter_ids``); the public methods of :class:`FileStorage` do the common work once:
validating ids, naming new files (a UUID, or a readable key made from a template: see
:mod:`sa_depot.io.keys`), turning any accepted input into a stream, detecting the content type,
hashing the content while it streams in and assembling the metadata. The primitives receive
the final id, whatever named it; an id may contain ``/`` (a key such as
``acme/2026/11/<uuid>.pdf``) and listing returns such ids whole.

Error semantics shared by every backend (each is a subclass of :class:`~sa_depot.DepotError`):

* a malformed id (``../x``, an absolute path, a NUL byte, a wrong format) raises
  :class:`~sa_depot.exceptions.InvalidFileId`, which is a ``ValueError``;
* a well-formed id naming no file raises :class:`~sa_depot.exceptions.FileNotFound`, which is a
  ``FileNotFoundError`` and so an ``IOError`` as in filedepot;
* content that cannot be stored (a ``str``, an object that is not readable) raises
  :class:`~sa_depot.exceptions.UnsupportedContent`, which is a ``TypeError``;
* a failure of the backend itself raises :class:`~sa_depot.exceptions.StorageError` (an
  ``OSError``) naming the storage and the cause. An exception raised by the *input* stream
  while it is read propagates unchanged. Either way nothing of the failed write stays visible.
"""

from __future__ import annotations

import abc
import hashlib
import io
import itertools
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, ClassVar

from sa_depot.exceptions import FileNotFound, InvalidFileId
from sa_depot.io.keys import MAX_KEY_BYTES, KeyTemplate, as_key_template, is_valid_key
from sa_depot.io.ranges import RangeSource
from sa_depot.io.stored import (
    DEFAULT_CHUNK_SIZE,
    FileInfo,
    PositionedStoredFile,
    ResponseOverrides,
    StoredFile,
    parse_timestamp,
    seek_target,
    utcnow,
)

#: Chunks the content's hashing may lag behind their reading (each one a buffer of
#: ``chunk_size`` bytes).
_HASHED_BEHIND = 4
_UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class IncomingContent:
    """The content being written, as a backend's ``_write`` receives it.

    Reading it (``read`` or iterating over ``chunks``) hashes and counts the bytes on the way,
    so once the backend has consumed it all, :attr:`info` holds the final length and checksum.
    """

    def __init__(self, stream: BinaryIO | io.RawIOBase, info: FileInfo, chunk_size: int) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self._length = 0
        self._done = False
        self.info = info
        self.chunk_size = chunk_size

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if size < 0:
            return b"".join(self.chunks())
        data = self._stream.read(size) or b""
        if not data:
            self._finish()
            return b""
        self._hash.update(data)
        self._length += len(data)
        return bytes(data)

    def chunks(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(self.chunk_size)
            if not chunk:
                return
            yield chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # for consumers that want it
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def checksum_ahead(self) -> tuple[str, int] | None:
        """The SHA-256 (hex) and length the whole content will have, read ahead without
        consuming it, when its source can seek back (a file on disk, bytes); ``None`` when it
        cannot (a stream from a socket). Lets a backend send the checksum before the content
        (S3 metadata is fixed when an upload starts); the content read afterwards must hash
        the same, which the backend checks before making it visible."""
        read_ahead = getattr(self._stream, "read_ahead", None)
        chunks = None if self._done or read_ahead is None else read_ahead(self.chunk_size)
        if chunks is None:
            return None
        digest = self._hash.copy()
        length = self._length
        for chunk in chunks:
            digest.update(chunk)
            length += len(chunk)
        return digest.hexdigest(), length

    def random_access(self) -> RangeSource | None:
        """The whole content as a :class:`~sa_depot.io.ranges.RangeSource`, readable at any
        offset by several threads, when nothing has been read yet and its source allows it (a
        file on disk, bytes, a spooled upload); ``None`` otherwise. Read it with
        :meth:`read_through` first: the content is hashed then, as :meth:`read` would."""
        get = getattr(self._stream, "random_access", None)
        if self._done or self._length or get is None:
            return None
        source: RangeSource | None = get()
        return source

    def read_through(
        self, source: RangeSource, also: Callable[[memoryview], object] | None = None
    ) -> None:
        """Read all of ``source`` (what :meth:`random_access` gave) in order, ``chunk_size``
        bytes at a time, hashing and counting it as :meth:`read` would, so that :attr:`info`
        is final afterwards. ``also`` sees each chunk too, in order, in this thread, while the
        content's SHA-256 is computed in a thread of its own (hashing releases the GIL: on two
        cores, hashing beside writing or beside a second hash takes the time of the longer of
        the two). A chunk is valid only until ``also`` returns. The source's length becomes
        what was read (a file may have changed size since). Errors of ``also`` propagate."""
        if also is None:
            self._read_through_alone(source)
        else:
            self._read_through_beside(source, also)
        source.length = self._length
        source.consumed()
        self._finish()

    def _read_through_beside(
        self, source: RangeSource, also: Callable[[memoryview], object]
    ) -> None:
        # A few reused buffers: one is filled again only once its chunk is hashed, so the
        # hashing may lag behind by a chunk or two without the reading waiting at every chunk.
        # The hashing thread is fed through SimpleQueues, whose put and get an interrupt
        # (Ctrl-C) cannot leave half done: an executor's could, and hang the process.
        chunks: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        hashed: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        hasher = threading.Thread(
            target=_hash_chunks, args=(self._hash, chunks, hashed), name="sa-depot-hash"
        )
        hasher.daemon = True  # never holds up the interpreter's exit
        buffers = [bytearray(self.chunk_size) for _ in range(_HASHED_BEHIND)]
        pending = 0  # chunks handed to the hashing thread, not yet reported hashed
        try:
            try:
                hasher.start()
            except RuntimeError:  # no new thread at interpreter shutdown: hash here instead
                self._read_through_alone(source, also)
                return
            for turn in itertools.count():
                if pending == len(buffers):  # frees the buffer about to be refilled
                    _raise_if_failed(hashed.get())
                    pending -= 1
                chunk = source.chunk_at(self._length, buffers[turn % len(buffers)])
                if not chunk:
                    break
                chunks.put(chunk)
                pending += 1
                also(chunk)
                self._length += len(chunk)
            while pending:
                _raise_if_failed(hashed.get())
                pending -= 1
        finally:
            chunks.put(None)  # the thread ends once it has hashed what it was given
            if hasher.ident is not None:  # started
                hasher.join()

    def _read_through_alone(
        self, source: RangeSource, also: Callable[[memoryview], object] | None = None
    ) -> None:
        """:meth:`read_through` without a second thread: each chunk is hashed, then given to
        ``also``, one after the other (what a process shutting down can still do)."""
        buffer = bytearray(self.chunk_size)
        while chunk := source.chunk_at(self._length, buffer):
            self._hash.update(chunk)
            if also is not None:
                also(chunk)
            self._length += len(chunk)

    @property
    def finished(self) -> bool:
        return self._done

    def _finish(self) -> None:
        self._done = True
        self.info.content_length = self._length
        self.info.checksum = self._hash.hexdigest()


def _hash_chunks(
    digest: Any,
    chunks: queue.SimpleQueue[memoryview | None],
    hashed: queue.SimpleQueue[BaseException | None],
) -> None:
    """The hashing thread of :meth:`IncomingContent.read_through`: hash each chunk in order
    and report it hashed, until ``None``; a failure is reported in place of the chunk."""
    try:
        while (chunk := chunks.get()) is not None:
            digest.update(chunk)
            hashed.put(None)
    except BaseException as exc:  # noqa: BLE001 - the reading thread raises it
        hashed.put(exc)


def _raise_if_failed(outcome: BaseException | None) -> None:
    if outcome is not None:
        raise outcome


class FileStorage(abc.ABC):
    """The contract every storage honours.

    Public methods take a file id or a :class:`StoredFile` (``file_or_id``); the content given to
    :meth:`create` and :meth:`replace` may be bytes, a binary file object (seekable or not), a
    :class:`~sa_depot.io.utils.FileIntent`, a web framework's upload object or a
    :class:`StoredFile` of any storage.
    """

    #: Chunk size used to stream content in and out.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    #: Human-readable description of the id format, used in error messages.
    id_format: ClassVar[str] = (
        "a UUID such as '1b4e28ba-2fa1-11d2-883f-0016d3cca427', or a key such as "
        "'acme/2026/11/1b4e28ba-2fa1-11d2-883f-0016d3cca427.pdf' (see sa_depot.io.keys)"
    )
    #: Constructor options that keep the storage from creating what it lacks (a local
    #: directory, an S3 bucket), so that a missing one is an error naming it rather than an
    #: empty storage made on the spot. Tools that only look at storages pass them:
    #: ``DepotManager.configure(name, options, create=False)``.
    create_nothing_options: ClassVar[Mapping[str, Any]] = {}

    #: The name the storage is configured under in :class:`~sa_depot.manager.DepotManager`;
    #: set by the manager, used in error messages.
    storage_name: str | None = None
    #: How :meth:`create` names new files when the caller gives no ``key``: ``None`` (the
    #: default) for a UUID, or a :class:`~sa_depot.io.keys.KeyTemplate`. The manager sets it
    #: from the ``key_template`` option (``'depot.key_template': '{yyyy}/{mm}/{id}{ext}'``).
    key_template: KeyTemplate | None = None

    # -- the primitives a backend implements -------------------------------------------------
    @abc.abstractmethod
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        """Store all of ``content`` under ``content.info.file_id``, atomically.

        Consume ``content`` completely, then persist ``content.info`` (whose length and checksum
        are final only then). Readers must never see a partial file; on any exception nothing
        new may stay visible and, when ``replace`` is true, the previous version stays intact.
        """

    @abc.abstractmethod
    def _open(self, file_id: str) -> StoredFile:
        """Open a valid id for reading; raise :class:`FileNotFound` if it is absent."""

    @abc.abstractmethod
    def _delete(self, file_id: str) -> None:
        """Delete a valid id; do nothing if it is absent."""

    @abc.abstractmethod
    def _exists(self, file_id: str) -> bool:
        """Whether a valid id names a stored file."""

    @abc.abstractmethod
    def _iter_ids(self) -> Iterator[str]:
        """Every stored id, each once, in any order."""

    # -- policies a backend may override -----------------------------------------------------
    def new_file_id(self) -> str:
        """A fresh id for :meth:`create`."""
        return str(uuid.uuid4())

    def is_valid_id(self, file_id: str) -> bool:
        """Whether ``file_id`` is of this storage's id format: a canonical lowercase UUID, or
        a safe key (:func:`~sa_depot.io.keys.is_valid_key`)."""
        return _UUID_RE.match(file_id) is not None or is_valid_key(file_id)

    # -- the public API, shared by every backend ---------------------------------------------
    @property
    def description(self) -> str:
        """How error messages name this storage."""
        if self.storage_name:
            return repr(self.storage_name)
        return type(self).__name__

    @staticmethod
    def fileinfo(
        fileobj: Any,
        filename: str | None = None,
        content_type: str | None = None,
        existing: Any = None,
    ) -> tuple[Any, str, str]:
        """filedepot's ``FileStorage.fileinfo(fileobj, filename, content_type, existing)``:
        ``(content, filename, content_type)``; see :func:`sa_depot.io.utils.fileinfo`."""
        from sa_depot.io.utils import fileinfo  # utils imports this module

        return fileinfo(fileobj, filename, content_type, existing)

    def fileid(self, file_or_id: StoredFile | str) -> str:
        """The validated id of ``file_or_id``; raises :class:`InvalidFileId`."""
        if type(file_or_id) is str:  # the common case, without the ABC's isinstance checks
            file_id: object = file_or_id
        else:
            file_id = file_or_id.file_id if isinstance(file_or_id, StoredFile) else file_or_id
        if (
            not isinstance(file_id, str)
            or len(file_id) > MAX_KEY_BYTES
            or not self.is_valid_id(file_id)
        ):
            raise InvalidFileId(self.description, file_id, self.id_format)
        return file_id

    def create(
        self,
        content: Any,
        filename: str | None = None,
        content_type: str | None = None,
        *,
        key: KeyTemplate | str | None = None,
        key_values: Mapping[str, object] | None = None,
    ) -> str:
        """Store ``content`` as a new file and return its id.

        :param key: name the file by this template (a :class:`~sa_depot.io.keys.KeyTemplate`
            or its text, e.g. ``'{tenant}/{yyyy}/{mm}/{id}{ext}'``) instead of the one a
            :class:`~sa_depot.io.utils.KeyedContent` carries (a column's ``key``) or the
            storage's :attr:`key_template` (without any: a UUID).
        :param key_values: the values of the template's own placeholders (``{'tenant':
            'acme'}``), over those a :class:`~sa_depot.io.utils.FileIntent` carries.
        :raises InvalidKey: the template or its values cannot make a safe key (nothing is
            stored).
        """
        return self.store(content, filename, content_type, key=key, key_values=key_values).file_id

    def store(
        self,
        content: Any,
        filename: str | None = None,
        content_type: str | None = None,
        *,
        key: KeyTemplate | str | None = None,
        key_values: Mapping[str, object] | None = None,
    ) -> FileInfo:
        """Like :meth:`create`, but return the new file's metadata (id, filename, content
        type, length, checksum, time) as stored, without reading the file back."""
        if key is None and key_values is None:  # most creates: no need to build one
            naming = _DEFAULT_NAMING
        else:
            naming = _Naming(as_key_template(key), key_values)
        return self._store(naming, content, filename, content_type, replace=False)

    def replace(
        self,
        file_or_id: StoredFile | str,
        content: Any,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """Replace the content and metadata of a file, keeping its id; return the id.

        Given a plain id, the file must exist (:class:`FileNotFound` otherwise). Given a
        :class:`StoredFile`, possibly of another storage, the file is written under the same id
        whether or not it exists here: ``for fid in src.list(): f = src.get(fid);
        dst.replace(f, f)`` copies a whole storage. Filename defaults to the
        old one when ``content`` carries none; the content type is detected anew (the new
        content may be of another type) unless given.
        """
        file_id = self.fileid(file_or_id)
        if not isinstance(file_or_id, StoredFile):
            if not self._exists(file_id):
                raise FileNotFound(self.description, file_id)
            if filename is None and not _carries_metadata(content):
                with self._open(file_id) as old:
                    filename = old.filename
        elif filename is None and not _carries_metadata(content):
            filename = file_or_id.filename
        self._store(file_id, content, filename, content_type, replace=True)
        return file_id

    def get(self, file_or_id: StoredFile | str) -> StoredFile:
        """Open a file for reading. Close it when done (it is a context manager)."""
        return self._open(self.fileid(file_or_id))

    def delete(self, file_or_id: StoredFile | str) -> None:
        """Delete a file. Deleting a file that does not exist does nothing."""
        self._delete(self.fileid(file_or_id))

    def exists(self, file_or_id: StoredFile | str) -> bool:
        """Whether the file exists."""
        return self._exists(self.fileid(file_or_id))

    def list(self) -> list[str]:
        """The ids of every stored file (see :meth:`iter_ids` for huge storages)."""
        return list(self._iter_ids())

    def iter_ids(self) -> Iterator[str]:
        """The ids of every stored file, lazily."""
        return self._iter_ids()

    def write_copy(
        self,
        stored: StoredFile,
        *,
        file_id: str | None = None,
        last_modified: datetime | None = None,
    ) -> FileInfo:
        """Write ``stored``, a file of any storage, here under the same id with all its
        metadata (filename, content type, ``last_modified``, extra); return what was stored.

        Unlike ``replace(stored, stored)``, which stamps the time of the copy, this keeps the
        original ``last_modified``: it is what copying and migrating between storages use.
        The checksum and length are computed anew from the bytes written, so a caller can
        compare them with the source's.

        :param file_id: store the copy under this id instead (for a storage that cannot hold
            the original id).
        :param last_modified: stamp this time instead of the original's. Moving files that rows
            will reference stamps the time of the copy, so that the collector's grace period
            protects the copy until the rows' update commits.
        """
        info = FileInfo(
            file_id=self.fileid(stored.file_id if file_id is None else file_id),
            filename=stored.filename,
            content_type=stored.content_type,
            last_modified=stored.last_modified if last_modified is None else last_modified,
            extra=dict(stored.info.extra),
        )
        self._write_incoming(stored, info, replace=True)
        return info

    def info(self, file_or_id: StoredFile | str) -> FileInfo:
        """The metadata of a file, without reading its content."""
        with self.get(file_or_id) as stored:
            return stored.info

    def public_url(
        self, file_or_id: StoredFile | str, *, response: ResponseOverrides | None = None
    ) -> str | None:
        """A URL that serves the file without the middleware, or ``None`` (the default).

        Computed without I/O, so it is cheap to call on every page render; it may expire (a
        presigned URL), so callers compute it when they need it and never store it. Never an
        unsigned URL for a private object.

        :param response: headers the URL must make the store send (see
            :class:`ResponseOverrides`). A storage that cannot carry them in its URL returns
            ``None`` when they are given, so that the caller proxies the download instead.
        """
        return None

    # -- the common work ---------------------------------------------------------------------
    def _store(
        self,
        file_id: str | _Naming,
        content: Any,
        filename: str | None,
        content_type: str | None,
        *,
        replace: bool,
    ) -> FileInfo:
        from sa_depot.io import utils  # utils imports this module

        stream, filename, content_type = utils.prepare_content(content, filename, content_type)
        if isinstance(file_id, _Naming):  # a new file: named once its filename is known
            # the caller's template, else the content's (a column's), else the storage's
            template = file_id.template or utils.carried_key_template(content) or self.key_template
            if template is None:
                file_id = self.new_file_id()
            else:
                values = {**utils.carried_key_values(content), **(file_id.values or {})}
                file_id = self.fileid(template.render(filename=filename, values=values))
        info = FileInfo(
            file_id=file_id,
            filename=filename,
            content_type=content_type,
            last_modified=utcnow(),
        )
        self._write_incoming(stream, info, replace=replace)
        return info.copy()  # the backend may keep the object it was given

    def _write_incoming(
        self, stream: BinaryIO | io.RawIOBase, info: FileInfo, *, replace: bool
    ) -> None:
        incoming = IncomingContent(stream, info, self.chunk_size)
        self._write(incoming, replace=replace)
        if not incoming.finished:  # a backend bug, not a user error: never store a truncated file
            raise RuntimeError(f"{type(self).__name__}._write did not consume all the content")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


@dataclass(frozen=True)
class _Naming:
    """How to name a new file: the template the caller gave (``None``: the content's or the
    storage's, if any, else a UUID) and the values the caller gave."""

    template: KeyTemplate | None
    values: Mapping[str, object] | None


#: The naming of a create given neither a key nor key values.
_DEFAULT_NAMING = _Naming(None, None)


def _carries_metadata(content: object) -> bool:
    """Whether ``content`` brings its own filename (a FileIntent, an upload, a StoredFile)."""
    from sa_depot.io.utils import content_filename

    return content_filename(content) is not None


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FileInfo",
    "FileStorage",
    "IncomingContent",
    "PositionedStoredFile",
    "ResponseOverrides",
    "StoredFile",
    "parse_timestamp",
    "seek_target",
    "utcnow",
]
