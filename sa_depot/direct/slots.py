"""Upload slots: where a browser may upload one file for one field, and the token that
attaches it.

::

    uploads = DirectUploads(secret=settings.UPLOAD_SECRET)
    slot = uploads.presigned_post(Document.content, filename="scan.pdf",
                                  content_type="application/pdf", size=48213)
    # send slot.as_dict() to the browser, which posts the file to slot.url with slot.fields
    doc.content = uploads.receive(form["token"])   # or the token string itself
    session.commit()   # the flush verifies the staged object, then it is the row's file

The server chooses the object (a fresh UUID in the field's upload storage), so a client can
only ever upload a new object and attach that one (see docs/direct-uploads.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from sqlalchemy.orm import InstrumentedAttribute

from sa_depot.direct import azure, gcs, s3
from sa_depot.direct.tokens import DirectUpload, TokenSigner, claims_of
from sa_depot.exceptions import ConfigurationError, UploadRefused, ValidationFailed, Violation
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.azure import AzureBlobStorage
from sa_depot.io.content_types import type_from_filename
from sa_depot.io.gcs import GCSStorage
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.orm.mapped import file_column

if TYPE_CHECKING:  # imported when used: sa_depot.io.boto3 needs Werkzeug (the s3 extra)
    from sa_depot.io.boto3 import S3Storage

_Upload = TypeVar("_Upload", bound=UploadedFile)

#: A token lives this long by default (seconds): long enough for a large upload.
DEFAULT_EXPIRES_IN = 3600


@dataclass(frozen=True)
class UploadSlot:
    """Where and how the browser uploads one file, and the token that attaches it.

    :meth:`as_dict` is what to send to the browser as JSON.
    """

    token: str
    #: ``'PUT'``, ``'POST'`` or ``'multipart'``.
    method: str
    #: The URL to PUT or POST to (``None`` for multipart: each part has its own).
    url: str | None = None
    #: Headers the PUT must send, exactly.
    headers: dict[str, str] = field(default_factory=dict)
    #: Form fields the POST must send before the file.
    fields: dict[str, str] = field(default_factory=dict)
    #: The multipart upload's id.
    upload_id: str | None = None
    #: Unix time at which the token expires.
    expires: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON for the browser; for multipart, the ``uploadId`` and ``key`` Uppy expects
        (the key is the token: every later call names the upload by it)."""
        data: dict[str, Any] = {"token": self.token, "method": self.method}
        if self.url is not None:
            data["url"] = self.url
        if self.headers:
            data["headers"] = self.headers
        if self.fields:
            data["fields"] = self.fields
        if self.upload_id is not None:
            data["uploadId"] = self.upload_id
            data["key"] = self.token
        data["expires"] = self.expires
        return data


@dataclass(frozen=True)
class _Field:
    name: str
    storage_name: str
    storage: FileStorage
    column_type: Any
    max_size: int | None


class DirectUploads:
    """Hands out upload slots for mapped file fields and reads back their tokens.

    :param secret: the key signing tokens (at least 16 bytes); keep it out of the code, as
        any signing secret.
    :param previous_secrets: older secrets still accepted (rotation).
    :param expires_in: seconds a slot's URLs and token stay valid.
    :raises ConfigurationError: a secret is too short, or itsdangerous is missing.

    :meth:`configure` makes an instance the one that reads token strings assigned to file
    attributes (``doc.content = form["token"]``).
    """

    _configured: ClassVar[DirectUploads | None] = None

    def __init__(
        self,
        secret: str | bytes,
        *,
        previous_secrets: Sequence[str | bytes] = (),
        expires_in: int = DEFAULT_EXPIRES_IN,
    ) -> None:
        if not 1 <= expires_in <= 7 * 24 * 3600:
            raise ConfigurationError(
                "DirectUploads: expires_in must be between 1 second and 7 days (S3's limit "
                f"for presigned URLs), not {expires_in}"
            )
        self.signer = TokenSigner(secret, previous_secrets)
        self.expires_in = expires_in

    # -- configuration -----------------------------------------------------------------------
    @classmethod
    def configure(
        cls,
        secret: str | bytes,
        *,
        previous_secrets: Sequence[str | bytes] = (),
        expires_in: int = DEFAULT_EXPIRES_IN,
    ) -> DirectUploads:
        """Make (and return) the instance that reads token strings assigned to attributes."""
        uploads = cls(secret, previous_secrets=previous_secrets, expires_in=expires_in)
        cls._configured = uploads
        return uploads

    @classmethod
    def configured(cls) -> DirectUploads:
        """The instance :meth:`configure` made.

        :raises ConfigurationError: none was configured.
        """
        if cls._configured is None:
            raise ConfigurationError(
                "an upload token was assigned, but no DirectUploads is configured to read it: "
                "call sa_depot.direct.DirectUploads.configure(secret=...) at start-up, or "
                "assign uploads.receive(token)"
            )
        return cls._configured

    @classmethod
    def reset(cls) -> None:
        """Forget the configured instance (for tests)."""
        cls._configured = None

    # -- reading tokens ----------------------------------------------------------------------
    def receive(self, token: str, now: float | None = None) -> DirectUpload:
        """The :class:`DirectUpload` a token stands for, to assign to its field.

        :raises UploadRefused: ``'forged'`` or ``'expired'``.
        """
        return self.signer.load(token, now)

    @overload
    def attachment(self, token: str) -> UploadedFile: ...
    @overload
    def attachment(self, token: str, upload_type: type[_Upload]) -> _Upload: ...
    def attachment(self, token: str, upload_type: type[UploadedFile] = UploadedFile) -> Any:
        """:meth:`receive`, typed as the ``upload_type`` the attribute holds once the flush
        attached the staged object (as :meth:`UploadedFile.of <sa_depot.fields.upload.
        UploadedFile.of>` types content), so that ``doc.content = uploads.attachment(token)``
        passes ``mypy --strict`` and pyright.

        :raises UploadRefused: ``'forged'`` or ``'expired'``.
        """
        return self.receive(token)

    # -- slots -------------------------------------------------------------------------------
    def presigned_put(
        self,
        attribute: InstrumentedAttribute[Any],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        checksum: str | None = None,
    ) -> UploadSlot:
        """A slot for one PUT of the whole file: to S3 (up to 5 GiB), Google Cloud Storage
        (a V4 signed URL) or Azure Blob Storage (a create-and-write SAS, up to 5,000 MiB).

        :param attribute: the mapped file attribute (``Document.content``).
        :param filename: the client's filename, kept in the descriptor.
        :param content_type: the type the client declares (signed: the PUT must send it).
        :param size: the exact size in bytes, if known (S3 signs it and refuses another;
            elsewhere the flush checks it).
        :param checksum: the hex SHA-256 the client declares; the flush checks it.
        :raises ValidationFailed: ``size`` breaks the field's size limits.
        :raises UploadRefused: ``'unsupported'``: the field's storage offers no presigned
            uploads, or the field has filters (they need the content).
        """
        target, declared, content_type, file_id, expires = self._begin(
            attribute, size, filename, content_type
        )
        lifetime = self._url_lifetime(expires)
        storage = target.storage
        if isinstance(storage, GCSStorage):
            signed = gcs.presigned_put(storage, file_id, content_type, lifetime)
        elif isinstance(storage, AzureBlobStorage):
            signed = azure.presigned_put(storage, file_id, content_type, lifetime)
        else:
            signed = s3.presigned_put(self._s3(target), file_id, content_type, size, lifetime)
        token = self._token(target, file_id, expires, filename, declared, size, checksum)
        return UploadSlot(token, "PUT", signed["url"], headers=signed["headers"], expires=expires)

    def presigned_post(
        self,
        attribute: InstrumentedAttribute[Any],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        checksum: str | None = None,
    ) -> UploadSlot:
        """A slot for one browser form POST (up to 5 GiB), whose policy bounds the size
        (``size`` exactly when declared, else the field's :class:`~sa_depot.io.validation.
        MaxSize`) and fixes the content type. Parameters as :meth:`presigned_put`."""
        target, declared, content_type, file_id, expires = self._begin(
            attribute, size, filename, content_type
        )
        if size is not None:
            low, high = size, size
        else:
            low, high = 0, min(target.max_size or s3.MAX_SINGLE_UPLOAD, s3.MAX_SINGLE_UPLOAD)
        signed = s3.presigned_post(
            self._s3(target), file_id, content_type, low, high, self._url_lifetime(expires)
        )
        token = self._token(target, file_id, expires, filename, declared, size, checksum)
        return UploadSlot(token, "POST", signed["url"], fields=signed["fields"], expires=expires)

    def create_multipart(
        self,
        attribute: InstrumentedAttribute[Any],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        checksum: str | None = None,
    ) -> UploadSlot:
        """Start a multipart upload (Uppy's ``createMultipartUpload``): parts of 5 MiB to
        5 GiB each (the last one smaller), 10,000 at most. Its ``as_dict()`` gives Uppy's
        ``{uploadId, key}``; then :meth:`sign_part`, :meth:`list_parts`,
        :meth:`complete_multipart` or :meth:`abort_multipart`, each given the token (Uppy's
        ``key``) and the upload id. Parameters as :meth:`presigned_put`."""
        target, declared, content_type, file_id, expires = self._begin(
            attribute, size, filename, content_type
        )
        upload_id = s3.create_multipart(self._s3(target), file_id, filename, content_type)
        token = self._token(target, file_id, expires, filename, declared, size, checksum, upload_id)
        return UploadSlot(token, "multipart", upload_id=upload_id, expires=expires)

    def sign_part(self, token: str, upload_id: str, part_number: int) -> dict[str, Any]:
        """Uppy's ``signPart``: ``{'url', 'expires'}``, the URL to PUT part ``part_number``
        to (its response's ``ETag`` header names the part at completion).

        :raises UploadRefused: a bad token, or one of another upload.
        """
        upload, storage = self._multipart(token, upload_id)
        expires_in = self._url_lifetime(upload.expires)
        url = s3.sign_part(storage, upload.file_id, upload_id, part_number, expires_in)
        return {"url": url, "expires": expires_in}

    def list_parts(self, token: str, upload_id: str) -> list[dict[str, Any]]:
        """Uppy's ``listParts``: ``[{'PartNumber', 'Size', 'ETag'}]`` uploaded so far."""
        upload, storage = self._multipart(token, upload_id)
        return s3.list_parts(storage, upload.file_id, upload_id)

    def complete_multipart(
        self, token: str, upload_id: str, parts: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Uppy's ``completeMultipartUpload``: assemble the staged object from ``parts``
        (``[{'PartNumber', 'ETag'}]``); returns ``{'token'}``, to attach it with."""
        upload, storage = self._multipart(token, upload_id)
        s3.complete_multipart(storage, upload.file_id, upload_id, parts)
        return {"token": token, "location": None}

    def abort_multipart(self, token: str, upload_id: str) -> None:
        """Uppy's ``abortMultipartUpload``: the parts are removed."""
        upload, storage = self._multipart(token, upload_id)
        s3.abort_multipart(storage, upload.file_id, upload_id)

    # -- helpers -----------------------------------------------------------------------------
    def _begin(
        self,
        attribute: InstrumentedAttribute[Any],
        size: int | None,
        filename: str | None,
        content_type: str | None,
    ) -> tuple[_Field, str | None, str, str, int]:
        """What every slot starts with: the field, the declared and the sent content type, a
        fresh file id and the expiry (POSIX seconds)."""
        target = self._field(attribute, size)
        return (
            target,
            content_type,
            _wire_type(content_type, filename),
            _new_file_id(),
            self._expiry(),
        )

    def _field(self, attribute: InstrumentedAttribute[Any], size: int | None) -> _Field:
        if not isinstance(attribute, InstrumentedAttribute):
            raise UploadRefused(
                "unsupported",
                f"upload slots are made for a mapped file attribute (Document.content), not "
                f"{type(attribute).__name__}",
            )
        mapper = attribute.parent.mapper
        column = file_column(mapper, attribute.key)
        column_type: Any = column.type
        if not getattr(column_type, "sa_depot_file_field", False):
            raise UploadRefused("unsupported", f"{attribute} is not a file column")
        name = bound_field_name(mapper.class_, attribute.key)
        if getattr(column_type, "filters", ()) and getattr(column_type, "promote_to", None) is None:
            raise UploadRefused(
                "unsupported",
                f"{name} has filters, which make derivatives from the content as it is "
                "stored: upload to the application instead, declare promote_to (the filters "
                "then run at the promotion), or use a field without filters",
            )
        storage_name = DepotManager.resolve_alias(
            column_type.upload_storage or DepotManager.get_default()
        )
        storage = DepotManager.get(storage_name)
        validation = column_type.validation
        max_size = validation.max_bytes
        if size is not None:
            if size < 0:
                raise UploadRefused("size", f"a size is a number of bytes, not {size}")
            if max_size is not None and size > max_size:
                raise ValidationFailed(
                    [
                        Violation(
                            "max_size",
                            max_size,
                            size,
                            f"{size} bytes, more than the {max_size} allowed",
                            name,
                        )
                    ]
                )
        return _Field(name, storage_name, storage, column_type, max_size)

    def _s3(self, target: _Field) -> S3Storage:
        from sa_depot.io.boto3 import S3Storage

        if isinstance(target.storage, S3Storage):
            return target.storage
        raise UploadRefused(
            "unsupported",
            f"{target.name} stores files in {target.storage.description}, which offers no "
            "presigned POST or multipart uploads here (S3 storages do; Google Cloud Storage "
            "and Azure take presigned PUTs): upload to the application instead",
        )

    def _multipart(self, token: str, upload_id: str) -> tuple[DirectUpload, S3Storage]:
        from sa_depot.io.boto3 import S3Storage

        upload = self.receive(token)
        if upload.upload_id is None or upload.upload_id != upload_id:
            raise UploadRefused("other field", "the token was issued for another upload")
        storage = DepotManager.get(upload.storage)
        if not isinstance(storage, S3Storage):
            raise UploadRefused("unsupported", f"{storage.description} is not an S3 storage")
        return upload, storage

    def _expiry(self) -> int:
        return int(time.time()) + self.expires_in

    @staticmethod
    def _url_lifetime(expires: int) -> int:
        return max(1, expires - int(time.time()))

    def _token(
        self,
        target: _Field,
        file_id: str,
        expires: int,
        filename: str | None,
        content_type: str | None,
        size: int | None,
        checksum: str | None,
        upload_id: str | None = None,
    ) -> str:
        if checksum is not None:
            checksum = checksum.lower()
            if len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
                raise UploadRefused(
                    "checksum", "a declared checksum is the hex SHA-256 of the content"
                )
        return self.signer.dump(
            claims_of(
                field=target.name,
                storage=target.storage_name,
                file_id=file_id,
                expires=expires,
                filename=filename,
                content_type=content_type,
                size=size,
                checksum=checksum,
                max_size=target.max_size,
                upload_id=upload_id,
            )
        )


def bound_field_name(cls: type, key: str) -> str:
    """The name a token binds: ``'module.Class.attribute'``."""
    return f"{cls.__module__}.{cls.__qualname__}.{key}"


def _wire_type(declared: str | None, filename: str | None) -> str:
    """The ``Content-Type`` the object is uploaded with: the declared type, else the one the
    filename names. An undeclared type stays out of the token: the flush then stores the
    type sniffed from the content."""
    return declared or type_from_filename(filename) or "application/octet-stream"


def _new_file_id() -> str:
    return str(uuid.uuid4())


__all__ = ["DEFAULT_EXPIRES_IN", "DirectUploads", "UploadSlot", "bound_field_name"]
