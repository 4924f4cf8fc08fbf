"""Turning what users hand us into ``(stream, filename, content_type)``.

Accepted content:

* ``bytes``, ``bytearray``, ``memoryview``;
* binary file objects, seekable or not (a ``name`` attribute gives the filename);
* :class:`FileIntent` (content plus an explicit filename and content type);
* upload objects of web frameworks: Werkzeug/Flask ``FileStorage`` (``stream``, ``filename``,
  ``content_type``), Starlette/FastAPI ``UploadFile`` (``file``, ``filename``,
  ``content_type``), ``cgi.FieldStorage``-like objects (``file``, ``filename``, ``type``);
* a :class:`~sa_depot.io.interfaces.StoredFile` of any storage.

A ``str`` is refused with :class:`~sa_depot.exceptions.UnsupportedContent` (a ``TypeError``):
encode it and pass bytes.

Whatever carries it, the filename goes through one normalisation
(:mod:`sa_depot.io.filenames`): its last path component, without invisible or control
characters. Content without a name is named ``'unnamed'``, as in filedepot.

Without an explicit content type (the ``content_type`` argument, or the one a FileIntent or an
upload object carries), the type is sniffed from the first bytes with libmagic and refined by the
filename: see :mod:`sa_depot.io.content_types` for the rule.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from sa_depot.exceptions import UnsupportedContent
from sa_depot.io.content_types import DEFAULT_CONTENT_TYPE as DEFAULT_CONTENT_TYPE
from sa_depot.io.content_types import SNIFF_BYTES, guess_content_type
from sa_depot.io.filenames import normalize_filename, unescape_form_filename
from sa_depot.io.keys import KeyTemplate
from sa_depot.io.ranges import RangeSource
from sa_depot.io.stored import StoredFile, utcnow
from sa_depot.io.validation import Candidate, Validation

#: The filename of content stored without one (filedepot's ``'unnamed'``).
DEFAULT_FILENAME = "unnamed"
#: filedepot compatibility: filedepot spooled uploads above this size to disk.
INMEMORY_FILESIZE = 1024 * 1024


class FileIntent:
    """Content plus the filename and content type it should be stored with.

    ``FileIntent(open('photo', 'rb'), 'photo.jpg', 'image/jpeg')``: the filename and content type
    given here win over those the content carries itself. ``key_values`` fills the
    placeholders of the key template the file is stored by (``{'tenant': 'acme'}`` for
    ``'{tenant}/{id}{ext}'``: see :mod:`sa_depot.io.keys`).
    """

    def __init__(
        self,
        fileobj: Any,
        filename: str | None,
        content_type: str | None,
        *,
        key_values: Mapping[str, object] | None = None,
    ) -> None:
        self._fileobj = fileobj
        self.filename = filename
        self.content_type = content_type
        self.key_values: dict[str, object] = dict(key_values or {})

    @property
    def fileobj(self) -> Any:
        return self._fileobj

    @property
    def fileinfo(self) -> tuple[Any, str | None, str | None]:
        """``(fileobj, filename, content_type)``, as filedepot's ``FileIntent.fileinfo``."""
        return self._fileobj, self.filename, self.content_type

    def __repr__(self) -> str:
        return f"FileIntent(filename={self.filename!r}, content_type={self.content_type!r})"


class ValidatedContent(FileIntent):
    """Content to be checked by ``validation`` while it is stored
    (:mod:`sa_depot.io.validation`): any storage's ``create``/``store`` accepts it, and raises
    :class:`~sa_depot.exceptions.ValidationFailed`, storing nothing, when the content breaks a
    rule. The filename and content type are those the content carries."""

    def __init__(self, content: Any, validation: Validation) -> None:
        super().__init__(content, None, None)
        self.validation = validation

    @property
    def fileinfo(self) -> tuple[Any, str | None, str | None]:
        return fileinfo(self.fileobj)

    def __repr__(self) -> str:
        return f"ValidatedContent({self.fileobj!r}, {self.validation!r})"


class KeyedContent(FileIntent):
    """Content to be named by ``key_template`` (:mod:`sa_depot.io.keys`) when it is stored,
    unless the caller of ``create``/``store`` gives a ``key`` itself: how a column's
    ``key=...`` reaches the storage. The filename and content type are those the content
    carries."""

    def __init__(
        self,
        content: Any,
        key_template: KeyTemplate,
        key_values: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(content, None, None, key_values=key_values)
        self.key_template = key_template

    @property
    def fileinfo(self) -> tuple[Any, str | None, str | None]:
        return fileinfo(self.fileobj)

    def __repr__(self) -> str:
        return f"KeyedContent({self.fileobj!r}, {self.key_template!r})"


def carried_key_values(content: object) -> dict[str, object]:
    """The key values ``content`` carries (a :class:`FileIntent`'s, the outer one winning)."""
    if not isinstance(content, FileIntent):
        return {}
    return {**carried_key_values(content.fileobj), **content.key_values}


def carried_key_template(content: object) -> KeyTemplate | None:
    """The key template ``content`` carries (a :class:`KeyedContent`'s, the outer one
    winning), or ``None``."""
    while isinstance(content, FileIntent):
        if isinstance(content, KeyedContent):
            return content.key_template
        content = content.fileobj
    return None


def content_filename(content: object) -> str | None:
    """The filename ``content`` carries, if any, normalised as every stored filename is
    (:func:`~sa_depot.io.filenames.normalize_filename`)."""
    return normalize_filename(_carried_filename(content))


def _carried_filename(content: object) -> str | None:
    if isinstance(content, FileIntent):
        return content.filename or _carried_filename(content.fileobj)
    if isinstance(content, StoredFile):
        return content.filename
    if isinstance(content, (bytes, bytearray, memoryview, str)):
        return None
    filename = getattr(content, "filename", None)
    if isinstance(filename, str) and filename:  # an upload: the name a browser's form sent
        return unescape_form_filename(filename)
    name = getattr(content, "name", None)
    if isinstance(name, str) and name and not (name.startswith("<") and name.endswith(">")):
        return name
    return None


def _carried_content_type(content: object) -> str | None:
    if isinstance(content, FileIntent):
        return content.content_type or _carried_content_type(content.fileobj)
    if isinstance(content, StoredFile):
        return content.content_type
    if isinstance(content, (bytes, bytearray, memoryview)):
        return None
    for attr in ("content_type", "type"):  # Werkzeug/Starlette, then cgi.FieldStorage
        value = getattr(content, attr, None)
        if isinstance(value, str) and value:
            return value.split(";")[0].strip() or None
    return None


def _raw_stream(content: object) -> Any:
    """The underlying readable of ``content``."""
    if isinstance(content, FileIntent):
        return _raw_stream(content.fileobj)
    if isinstance(content, (bytes, bytearray, memoryview)):
        return io.BytesIO(content)
    if isinstance(content, StoredFile):
        return content
    for attr in ("stream", "file"):  # Werkzeug FileStorage, Starlette UploadFile, cgi
        inner = getattr(content, attr, None)
        # An upload object has a filename attribute even when it is empty or None (no file
        # chosen); its own read() may be async (Starlette), so always read the inner file.
        if inner is not None and hasattr(inner, "read") and hasattr(content, "filename"):
            return inner
    return content


class _HeadReader(io.RawIOBase):
    """A readable that replays a buffered head, then goes on with the rest of the stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._head_size = len(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Hand the stream's chunks through as they come: ``readinto`` would copy each one."""
        if size is None or size < 0:
            return self.readall()
        if self._head:
            data = bytes(self._head[:size])
            self._head = self._head[size:]
            return data
        return _checked_read(self._rest, size)

    def read_ahead(self, size: int) -> Iterator[bytes] | None:
        """What is left to read, in chunks of ``size`` bytes, without consuming it (the
        stream is put back where it was); ``None`` when the stream cannot seek back."""
        if not _can_seek(self._rest):
            return None
        return self._ahead(size)

    def random_access(self) -> RangeSource | None:
        """The whole content (head included) as a range source, before anything is read;
        ``None`` when the stream is neither a regular file nor in memory."""
        if len(self._head) != self._head_size:
            return None
        return RangeSource.of(self._rest, self._head_size)

    def _ahead(self, size: int) -> Iterator[bytes]:
        position = self._rest.tell()
        try:
            if self._head:
                yield bytes(self._head)
            while data := _checked_read(self._rest, size):
                yield data
        finally:
            self._rest.seek(position)

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = _checked_read(self._rest, len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def prepare_content(
    content: Any, filename: str | None = None, content_type: str | None = None
) -> tuple[BinaryIO, str, str]:
    """Normalise any accepted content into ``(binary stream, filename, content type)``.

    Explicit ``filename``/``content_type`` arguments win over those the content carries;
    content without a name is named :data:`DEFAULT_FILENAME` (``'unnamed'``, as in filedepot);
    either filename is normalised (:func:`~sa_depot.io.filenames.normalize_filename`).
    Reads at most :data:`SNIFF_BYTES` bytes ahead (to detect the type); the rest of the content
    is read by the caller, in chunks.
    """
    if isinstance(content, str):
        raise UnsupportedContent(
            "cannot store a str: files are bytes. Pass content.encode('utf-8'), or a file "
            "opened in binary mode ('rb')."
        )
    filename = normalize_filename(filename) or content_filename(content) or DEFAULT_FILENAME
    content_type = content_type or _carried_content_type(content)
    stream = _raw_stream(content)
    if not callable(getattr(stream, "read", None)):
        raise UnsupportedContent(
            f"cannot store a {type(content).__name__}: pass bytes, a binary file object, a "
            "FileIntent or an upload object"
        )
    validation = _validation_of(content)
    known_size = _remaining_size(stream) if validation else None
    head = _read_head(stream, SNIFF_BYTES)
    sniffed = None
    if not content_type:
        content_type = sniffed = guess_content_type(head, filename)
    if validation:  # checked where the content is read, once (see sa_depot.io.validation)
        candidate = Candidate(
            filename,
            content_type,
            head,
            lambda size: _checked_read(stream, size),
            sniffed_type=sniffed,
            content_length=known_size,
        )
        validation.check_head(candidate)
        reader = validation.reader(_HeadReader(candidate.head, stream), candidate)
        return reader, filename, content_type  # type: ignore[return-value]
    return _HeadReader(head, stream), filename, content_type  # type: ignore[return-value]


def _validation_of(content: object) -> Validation | None:
    while isinstance(content, FileIntent):
        if isinstance(content, ValidatedContent):
            return content.validation
        content = content.fileobj
    return None


def _remaining_size(stream: Any) -> int | None:
    """How many bytes a seekable stream holds from its position on; ``None`` when that
    does not show without reading (pipes, sockets, uploads streamed from a request)."""
    if not _can_seek(stream):
        return None
    try:
        position = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(position)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(end, int) or not isinstance(position, int):
        return None
    return max(0, end - position)


def _checked_read(stream: Any, size: int) -> bytes:
    """``stream.read(size)``, refusing answers that would silently corrupt the stored file."""
    data = stream.read(size)
    if data is None:
        raise UnsupportedContent(
            "the file object returned None from read(): it is a non-blocking stream with no "
            "data ready. Pass a blocking stream, or read the content first and pass bytes"
        )
    if isinstance(data, str):
        raise UnsupportedContent(
            "the file object returned str, not bytes: open it in binary mode ('rb')"
        )
    return bytes(data)


def _read_head(stream: Any, size: int) -> bytes:
    """Read up to ``size`` bytes (short reads of pipes and sockets are retried)."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        data = _checked_read(stream, remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


def file_from_content(content: Any) -> tuple[bool, Any]:
    """filedepot's helper: ``(must_close, fileobj)``, a readable binary file for any accepted
    content, rewound to its start when it can seek.

    ``must_close`` is true when the file was made here (from bytes), so the caller closes it;
    otherwise ``fileobj`` is the caller's own (the file, the upload's inner stream, the
    stored file). A stream that cannot seek is returned where it is: if it was read already,
    read the stored file instead (``uploaded_file.file``). Raises
    :class:`~sa_depot.exceptions.UnsupportedContent` (a ``TypeError``) for a ``str``.
    """
    if isinstance(content, str) or (
        isinstance(content, FileIntent) and isinstance(content.fileobj, str)
    ):
        raise UnsupportedContent("cannot store a str: files are bytes; pass content.encode()")
    inner = content.fileobj if isinstance(content, FileIntent) else content
    stream = _raw_stream(content)
    if _can_seek(stream):
        stream.seek(0)
    return isinstance(inner, (bytes, bytearray, memoryview)), stream


def fileinfo(
    fileobj: Any,
    filename: str | None = None,
    content_type: str | None = None,
    existing: Any = None,
) -> tuple[Any, str, str]:
    """filedepot's ``FileStorage.fileinfo``: ``(content, filename, content_type)`` for
    ``fileobj``, without reading a stream.

    ``content`` is what a storage would read: the upload's inner file for a web framework's
    upload object, ``fileobj`` itself otherwise. The filename and content type are the
    arguments, else those ``fileobj`` carries, else (without a filename) those of
    ``existing`` (a :class:`StoredFile`, or a callable returning one) when given; then
    :data:`DEFAULT_FILENAME` and a type sniffed from bytes content, guessed from the name, or
    ``application/octet-stream``. A :class:`FileIntent` gives its own three values unchanged.
    """
    if isinstance(fileobj, FileIntent):
        return fileobj.fileinfo  # type: ignore[return-value]
    content = fileobj
    if not isinstance(fileobj, (bytes, bytearray, memoryview, StoredFile)):
        content = _raw_stream(fileobj)
    filename = filename or content_filename(fileobj)
    content_type = content_type or _carried_content_type(fileobj)
    if filename is None and existing is not None:
        previous = existing() if callable(existing) else existing
        return content, previous.filename, previous.content_type
    if content_type is None:
        head = bytes(fileobj[:SNIFF_BYTES]) if isinstance(fileobj, (bytes, bytearray)) else b""
        content_type = guess_content_type(head, filename)
    return content, filename or DEFAULT_FILENAME, content_type


def timestamp() -> str:
    """The current UTC time in filedepot's format, ``'%Y-%m-%d %H:%M:%S'``."""
    return utcnow().strftime("%Y-%m-%d %H:%M:%S")


def _can_seek(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):  # no seekable(), or a closed file
        return False
