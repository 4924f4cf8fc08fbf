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
characters.

The content type is decided in this order:

1. the explicit ``content_type`` argument (or the one a FileIntent or upload object carries);
2. libmagic (python-magic) sniffing the first bytes of the content;
3. a guess from the filename's extension (:mod:`mimetypes`);
4. ``application/octet-stream``.

When libmagic answers only a generic type (``application/octet-stream``, ``text/plain``) and
the filename names a more specific one (``.css``, ``.csv``, ``.js``...), the filename's type is
used. Where libmagic is not installed, step 2 is skipped with one warning.
"""

from __future__ import annotations

import functools
import io
import mimetypes
import warnings
from collections.abc import Callable
from typing import Any, BinaryIO

from sa_depot.exceptions import UnsupportedContent
from sa_depot.io.filenames import normalize_filename, unescape_form_filename
from sa_depot.io.interfaces import StoredFile

#: How many leading bytes are given to libmagic.
SNIFF_BYTES = 2048
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_GENERIC_TYPES = frozenset({DEFAULT_CONTENT_TYPE, "text/plain", "application/x-empty"})
#: filedepot compatibility: filedepot spooled uploads above this size to disk.
INMEMORY_FILESIZE = 1024 * 1024


class FileIntent:
    """Content plus the filename and content type it should be stored with.

    ``FileIntent(open('photo', 'rb'), 'photo.jpg', 'image/jpeg')``: the filename and content type
    given here win over those the content carries itself.
    """

    def __init__(self, fileobj: Any, filename: str | None, content_type: str | None) -> None:
        self._fileobj = fileobj
        self.filename = filename
        self.content_type = content_type

    @property
    def fileobj(self) -> Any:
        return self._fileobj

    def __repr__(self) -> str:
        return f"FileIntent(filename={self.filename!r}, content_type={self.content_type!r})"


@functools.lru_cache(maxsize=1)
def _magic_detector() -> Callable[[bytes], str] | None:
    """python-magic's ``from_buffer``, or ``None`` (with one warning) if libmagic is missing.

    Cached so that libmagic loads once; ``_magic_detector.cache_clear()`` resets it.
    """
    try:
        import magic

        detector = magic.Magic(mime=True)
    except (ImportError, OSError, AttributeError) as exc:  # python-magic raises ImportError
        warnings.warn(
            f"libmagic is unavailable ({exc}); content types will be guessed from filenames "
            "only. Install libmagic (Debian: libmagic1, macOS: brew install libmagic).",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return detector.from_buffer


def guess_content_type(head: bytes, filename: str | None) -> str:
    """Detect the content type of content starting with ``head`` (see the module docs)."""
    by_name = mimetypes.guess_type(filename, strict=False)[0] if filename else None
    detector = _magic_detector()
    sniffed = None
    if detector is not None and head:
        try:
            sniffed = detector(head[:SNIFF_BYTES])
        except Exception:  # noqa: BLE001 - libmagic can fail on odd input; sniffing is optional
            sniffed = None
    if sniffed and (sniffed not in _GENERIC_TYPES or not by_name):
        return sniffed
    return by_name or sniffed or DEFAULT_CONTENT_TYPE


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
) -> tuple[BinaryIO, str | None, str]:
    """Normalise any accepted content into ``(binary stream, filename, content type)``.

    Explicit ``filename``/``content_type`` arguments win over those the content carries;
    either filename is normalised (:func:`~sa_depot.io.filenames.normalize_filename`).
    Reads at most :data:`SNIFF_BYTES` bytes ahead (to detect the type); the rest of the content
    is read by the caller, in chunks.
    """
    if isinstance(content, str):
        raise UnsupportedContent(
            "cannot store a str: files are bytes. Pass content.encode('utf-8'), or a file "
            "opened in binary mode ('rb')."
        )
    filename = normalize_filename(filename) or content_filename(content)
    content_type = content_type or _carried_content_type(content)
    stream = _raw_stream(content)
    if not callable(getattr(stream, "read", None)):
        raise UnsupportedContent(
            f"cannot store a {type(content).__name__}: pass bytes, a binary file object, a "
            "FileIntent or an upload object"
        )
    head = _read_head(stream, SNIFF_BYTES)
    if not content_type:
        content_type = guess_content_type(head, filename)
    return _HeadReader(head, stream), filename, content_type  # type: ignore[return-value]


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


def file_from_content(content: Any) -> BinaryIO:
    """filedepot compatibility: a binary stream for any accepted content."""
    return prepare_content(content)[0]
