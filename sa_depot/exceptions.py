"""The exceptions sa_depot raises.

Every class derives from :class:`DepotError`, and also from the built-in exception that
filedepot users already catch, so that code written for filedepot keeps working:

=====================  ===============================  ====================================
sa_depot               also a                           raised when
=====================  ===============================  ====================================
StorageNotFound        ``LookupError``, ``ValueError``  no storage has the given name
FileNotFound           ``FileNotFoundError`` (IOError)  the file id is well formed but absent
InvalidFileId          ``ValueError``                   the id is malformed (``../x``, NUL...)
InvalidKey             ``ValueError``                   a key template or its values cannot
                                                        make a safe key
UnsupportedContent     ``TypeError``                    the content cannot be stored (``str``)
ConfigurationError     ``ValueError``                   a storage or manager option is wrong
StorageError           ``OSError`` (IOError)            the backend failed (disk full, server
                                                        down, wrong credentials...)
CorruptMetadata        ``OSError``, ``ValueError``      a stored file's metadata is damaged
                                                        (a StorageError)
WrongUploadType        ``ValueError``                   a column is given a descriptor of another
                                                        upload type (a plain UploadedFile for an
                                                        image column)
FileDiscarded          ``ValueError``                   an UploadedFile whose file was removed
                                                        with the transaction that uploaded it
                                                        is assigned or saved again
ValidationFailed       ``ValueError``                   content broke its field's validators
                                                        (every violation listed; nothing
                                                        stored)
=====================  ===============================  ====================================

One warning: :class:`BlockingStorageWarning` (a ``RuntimeWarning``), when content assigned on a
running event loop is stored there, blocking it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class DepotError(Exception):
    """Base class of every exception raised by sa_depot."""


class StorageNotFound(DepotError, LookupError, ValueError):
    """No storage is configured under the requested name.

    Also a ``ValueError``, which filedepot raised for an alias of a missing storage and for
    an upload to one (``DepotManager.alias``, ``UploadedFile(content, name)``).
    """

    def __init__(self, name: str | None, configured: list[str]) -> None:
        self.name = name
        self.configured = list(configured)
        listed = ", ".join(repr(n) for n in self.configured) or "none"
        if name is None:
            msg = (
                "no default storage is configured: call DepotManager.configure(name, "
                "{'depot.storage_path': ...}) first (the first storage configured becomes the "
                f"default) or DepotManager.set_default(name); configured: {listed}"
            )
        else:
            msg = f"no storage named {name!r}; configured: {listed}"
        super().__init__(msg)

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class FileNotFound(DepotError, FileNotFoundError):
    """The file id is valid but no such file exists in the storage."""

    def __init__(self, storage: str, file_id: str, detail: str | None = None) -> None:
        self.storage = storage
        self.file_id = file_id
        message = f"file {file_id!r} does not exist in storage {storage}"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidFileId(DepotError, ValueError):
    """The file id is malformed: it can never name a file of this storage."""

    def __init__(self, storage: str, file_id: object, expected: str) -> None:
        self.storage = storage
        self.file_id = file_id
        shown = repr(file_id)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid file id {shown} for storage {storage}: expected {expected}")


class InvalidKey(DepotError, ValueError):
    """A key template (``'{tenant}/{yyyy}/{mm}/{id}{ext}'``) is malformed, or the values given
    to it cannot make a safe key: a placeholder without a value, a value left empty once
    sanitised, a key longer than the storages allow. The message names which."""


class UnsupportedContent(DepotError, TypeError):
    """The content given to a storage is of a type that cannot be stored."""


class ConfigurationError(DepotError, ValueError):
    """A storage, the manager or the middleware was given a wrong option."""


class StorageError(DepotError, OSError):
    """The storage backend failed: the message names the storage and the cause."""

    def __init__(self, storage: str, message: str) -> None:
        self.storage = storage
        super().__init__(f"storage {storage}: {message}")

    def __str__(self) -> str:
        return str(self.args[0])


class CorruptMetadata(StorageError, ValueError):
    """The metadata a storage keeps for a file is damaged (not JSON, or not what sa_depot or
    filedepot wrote): restore it from a backup, or delete the file. Also a ``ValueError``,
    which filedepot raised for it."""


class WrongUploadType(DepotError, ValueError):
    """A column was given a descriptor that is not of its ``upload_type`` (a plain
    UploadedFile for an ``UploadedImageWithThumb`` column): it lacks what the column's rows
    promise (a thumbnail...). Assign the content itself, or a descriptor of that type.
    filedepot raised ``ValueError`` too. Also raised, at the assignment, for content typed by
    ``SomeType.of(content)`` as a class the column does not make (``UploadedImageWithThumb.of``
    for a plain column): the attribute could not hold what its type checker was told."""

    def __init__(self, expected: type, given: type, *, advice: str | None = None) -> None:
        self.expected = expected
        self.given = given
        if advice is None:
            advice = (
                f"assign the content itself (bytes, a file, an upload) so that the column "
                f"makes a {expected.__name__}, or build one yourself"
            )
        super().__init__(
            f"this column stores {expected.__name__} descriptors, not {given.__name__}: {advice}"
        )


class FileDiscarded(DepotError, ValueError):
    """The file a descriptor names is gone, so saving the descriptor would make a row point at
    nothing: its files were removed because the transaction that uploaded them ended without
    saving them (a rollback, a closed session, a savepoint rolled back), or because a
    transaction that committed meanwhile let go of its last row (``released``), or the file
    does not exist in its storage (``missing``). Assign the content again instead."""

    _REASONS = {
        "rolled back": "was removed when the transaction that uploaded it ended without saving "
        "it (rollback or close); assign the content again to upload a new file",
        "released": "is being removed: a transaction that committed meanwhile let go of the "
        "last row using it; assign the content again to store a new file",
        "missing": "does not exist in its storage, so the row would point at nothing; assign "
        "the content again to store a new file",
    }

    def __init__(self, path: str, reason: str = "rolled back") -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"the file {path!r} {self._REASONS.get(reason, reason)}")


class BlockingStorageWarning(RuntimeWarning):
    """Content assigned to a file attribute on a running event loop was stored right there,
    blocking every task of the loop until the storage answered (a large file, a slow S3).
    In asynchronous code, store it first in a worker thread and assign the result:
    ``obj.attachment = await sa_depot.aio.store(content, field=Model.attachment)``."""


@dataclass(frozen=True)
class Violation:
    """One rule a file broke (see :mod:`sa_depot.io.validation`)."""

    #: The rule's name: ``'max_size'``, ``'min_size'``, ``'content_type'``, ``'extension'``,
    #: ``'image'``, ``'max_width'``, ``'max_height'``, ``'min_width'``, ``'min_height'``,
    #: ``'max_pixels'``, or a user validator's name.
    rule: str
    #: What the rule allows (bytes, pixels, the allowed types or extensions...), or ``None``.
    limit: Any
    #: What the file has (its size in bytes, its sniffed type...), or ``None`` when unknown.
    actual: Any
    #: The violation in words, e.g. ``'12582912 bytes, more than the 10485760 allowed'``.
    message: str
    #: The field the file was assigned to (``'Document.content'``), when one was.
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ValidationFailed(DepotError, ValueError):
    """Content broke the validators of the field it was given to: nothing was stored.

    :attr:`violations` lists every rule it broke, each with its field, rule name, limit and
    actual value. A ``ValueError`` too, as form libraries expect of invalid input. The
    transaction the assignment happened in is untouched: it can go on (assign valid content)
    or roll back.
    """

    def __init__(self, violations: Iterable[Violation]) -> None:
        self.violations: tuple[Violation, ...] = tuple(violations)
        super().__init__()

    def in_field(self, field: str) -> ValidationFailed:
        """Name ``field`` in the violations that name none (the ORM layer knows the field's
        name, the stream that found the violation does not); returns ``self``."""
        self.violations = tuple(
            v if v.field else dataclasses.replace(v, field=field) for v in self.violations
        )
        return self

    def __str__(self) -> str:
        listed = "; ".join(str(v) for v in self.violations)
        return f"the file was refused, nothing was stored: {listed}"


class UploadRefused(DepotError, PermissionError):
    """A direct upload's token (:mod:`sa_depot.direct`) was refused; nothing was attached.

    :attr:`reason` says why: ``'forged'`` (not signed by this application's secret, or
    altered), ``'expired'``, ``'other field'`` (signed for another field or storage),
    ``'replayed'`` (its file is attached to a row already, or is being removed),
    ``'not staged'`` (nothing was uploaded with it, the upload is incomplete, or its file was
    removed), ``'checksum'`` (the uploaded content is not what the client declared),
    ``'size'`` (not the size the slot was given for), ``'unsupported'`` (the field or storage
    cannot take direct uploads). A ``PermissionError`` too: a web handler answers it with 403
    (or 400), and asks the client for a new upload slot.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"direct upload refused ({reason}): {message}")
