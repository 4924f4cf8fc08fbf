"""Attaching a staged object: what assigning an upload token to a file attribute does.

The assignment checks the token's signature and expiry and its storage (the field's upload
storage) and gives the attribute an UploadedFile naming the staged object, whose lifecycle
record (:class:`StagedRecord`) owns no file yet: a refused token never removes anything.

The flush that writes the row claims the record for it; the claim verifies, before anything
else:

1. the token was issued for this field (module, class and attribute);
2. no row holds the object, nor is it being removed (the file registry and its journal, read
   by primary key and index in the flush's transaction), and no other token assignment of
   this session claimed it (a replay);
3. the object exists (the upload completed), its size is the declared one and within the
   slot's and the field's limits, its content passes the field's validators (its type
   sniffed from its first bytes), and its SHA-256 matches the declared checksum, if any.
   The object is read once, in chunks, to compute the checksum the descriptor carries.

Then the registry registers the object with the row like any new upload, and replacing or
deleting the committed row lets go of it as usual. A rollback (or a flush that never happens)
does not remove it: the object goes back to being staged, so the same token can be submitted
again (a form shown again after a validation error) until it expires, and a second request
holding the token while the first rolls back cannot lose it; the collector removes an
object no row took once its grace period is over. An object that fails step 3 is removed at
once (it is nobody's and never will be).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstanceState, Session

from sa_depot.database import registry
from sa_depot.database.provision import ensure_schema
from sa_depot.database.schema import files, pending_removals
from sa_depot.descriptor import PROMOTION_KEY
from sa_depot.direct.slots import DirectUploads, bound_field_name
from sa_depot.direct.tokens import PREFIX, DirectUpload
from sa_depot.exceptions import (
    FileNotFound,
    UnsupportedContent,
    UploadRefused,
    ValidationFailed,
    Violation,
)
from sa_depot.fields.upload import UPLOADED_AT_FORMAT, UploadedFile
from sa_depot.io.content_types import SNIFF_BYTES, guess_content_type
from sa_depot.io.interfaces import utcnow
from sa_depot.io.validation import Candidate, Validation
from sa_depot.manager import DepotManager, remove_paths
from sa_depot.orm.mapped import field_name, validated_in
from sa_depot.orm.offload import storage_io
from sa_depot.orm.records import Answerer, UploadRecord

#: ``Session.info`` key: ``(root transaction, staged paths claimed in it)`` (a replay claims
#: one twice).
_CLAIMED = "sa_depot.direct.claimed"
#: Bytes read at a time while verifying.
_CHUNK = 1024 * 1024


def is_upload_token(value: object) -> bool:
    """Whether assigning ``value`` attaches a direct upload (a token string or a
    :class:`DirectUpload`)."""
    return isinstance(value, DirectUpload) or (isinstance(value, str) and value.startswith(PREFIX))


def staged_file(column_type: Any, value: object) -> UploadedFile:
    """The UploadedFile that assigning the token ``value`` to a column of ``column_type``
    (an ``UploadedFileField``) gives the attribute: the staged object, to be verified by the
    flush.

    :raises UploadRefused: forged, expired, or issued for another storage.
    :raises ConfigurationError: a token string, and no :meth:`DirectUploads.configure`.
    """
    if isinstance(value, DirectUpload):
        # re-read from its token: a DirectUpload counts only as what its signature proves
        signer = value.issuer
        upload = signer.load(value.token) if signer is not None else _configured(value.token)
    else:
        assert isinstance(value, str)  # is_upload_token(value)
        upload = _configured(value)
    expected = DepotManager.resolve_alias(column_type.upload_storage or DepotManager.get_default())
    if DepotManager.resolve_alias(upload.storage) != expected:
        raise UploadRefused(
            "other field",
            f"the token was issued for storage {upload.storage!r}, and this field stores its "
            f"files in {expected!r}",
        )
    uploaded: UploadedFile = column_type.upload_type(
        {
            "file_id": upload.file_id,
            "path": upload.path,
            "depot_name": upload.storage,
            "filename": upload.filename,
            "content_type": upload.content_type or "application/octet-stream",
            "content_length": upload.size,
            "checksum": upload.checksum,
            "uploaded_at": utcnow().strftime(UPLOADED_AT_FORMAT),
            "_public_url": None,
            "files": [upload.path],
            **_queued_for(column_type),
        }
    )
    uploaded._record = StagedRecord(upload, column_type.validation, uploaded)
    return uploaded


def _queued_for(column_type: Any) -> dict[str, Any]:
    """The descriptor's promotion mark for a column with ``promote_to``: the staged object is
    its queued file, promoted (through the column's filters) after the commit."""
    target = getattr(column_type, "promote_to", None)
    if target is None:
        return {}
    return {PROMOTION_KEY: {"state": "queued", "to": target}}


def refuse_unverified(record: object) -> None:
    """Refuse to write a direct upload that no flush verified (an UploadedFile taken from an
    attribute a token was assigned to, then written by a statement).

    :raises UnsupportedContent: ``record`` is such an upload's.
    """
    if isinstance(record, StagedRecord) and not record.verified:
        raise UnsupportedContent(
            "a direct upload is attached by assigning its token to a mapped attribute and "
            "flushing the row, which verifies the uploaded object; a statement cannot write it"
        )


def _configured(token: str) -> DirectUpload:
    return DirectUploads.configured().receive(token)


class StagedRecord(UploadRecord):
    """The lifecycle record of a staged object: it owns no file until a flush verified the
    object for the row claiming it (see the module docs)."""

    __slots__ = ("upload", "uploaded", "validation", "verified")

    def __init__(
        self, upload: DirectUpload, validation: Validation, uploaded: UploadedFile
    ) -> None:
        super().__init__(())
        self.upload = upload
        self.validation = validation
        self.uploaded = weakref.ref(uploaded)
        self.verified = False

    @property
    def removable(self) -> tuple[str, ...]:
        """Nothing: a staged object this record did not take stays for the collector (see
        the module docs)."""
        return ()

    def claim_for_row(
        self,
        state: object,
        key: str,
        ledger: Answerer,
        losing: Callable[[Iterable[str]], bool],
    ) -> bool:
        """Verify the staged object for the row ``state`` (once), then claim it as any
        fresh upload is claimed.

        :raises UploadRefused: another field's token, a replay, or nothing staged.
        :raises ValidationFailed: the content breaks the field's validators (it is removed).
        """
        if not self.verified:
            assert isinstance(state, InstanceState)
            name = field_name(state.mapper, key)
            with validated_in(name):
                self._verify(state, key)
        return super().claim_for_row(state, key, ledger, losing)

    def _verify(self, state: InstanceState[Any], key: str) -> None:
        upload = self.upload
        if bound_field_name(state.mapper.class_, key) != upload.field:
            raise UploadRefused(
                "other field",
                f"the token was issued for {upload.field}, not "
                f"{bound_field_name(state.mapper.class_, key)}",
            )
        session = state.session
        assert session is not None
        claimed = _claimed_in(session)
        if upload.path in claimed:
            raise UploadRefused("replayed", "the token's file was attached in this session")
        connection = session.connection(bind_arguments={"mapper": state.mapper})
        if _known(connection, upload.path):
            raise UploadRefused(
                "replayed",
                "the token's file is attached to a row already (or being removed): a token "
                "attaches its upload once",
            )
        uploaded = self.uploaded()
        assert uploaded is not None  # the row being flushed holds it
        measured = storage_io(_measure, upload, self.validation)
        dict.update(uploaded, measured)
        claimed.add(upload.path)
        self.paths = (upload.path,)
        self.verified = True
        self.validation.mark_passed(self)


def _claimed_in(session: Session) -> set[str]:
    """The staged paths claimed in the session's current transaction (a rolled-back claim
    leaves its object staged, free to be claimed again)."""
    transaction = session.get_transaction()
    held: tuple[object, set[str]] | None = session.info.get(_CLAIMED)
    if held is None or held[0] is not transaction:
        held = (transaction, set())
        session.info[_CLAIMED] = held
    return held[1]


def _known(connection: sa.Connection, path: str) -> bool:
    """Whether the registry knows the file, or its journal is removing it."""
    ensure_schema(connection)
    canonical = registry.canonical([path])
    found = connection.execute(
        sa.select(files.c.path).where(files.c.path.in_(canonical)).limit(1)
    ).first()
    if found is not None:
        return True
    going = connection.execute(
        sa.select(pending_removals.c.id).where(pending_removals.c.path.in_(canonical)).limit(1)
    ).first()
    return going is not None


def _measure(upload: DirectUpload, validation: Validation) -> dict[str, Any]:
    """Read the staged object once: its length, checksum and sniffed type, checked against the
    token and the validators. Returns the descriptor's keys; an object that fails is removed.
    """
    storage = DepotManager.get(upload.storage)
    try:
        stored = storage.get(upload.file_id)
    except FileNotFound:
        raise UploadRefused(
            "not staged",
            "nothing was uploaded with this token, the upload is incomplete, or its file was "
            "removed: upload again with a new slot",
        ) from None
    try:
        with stored:
            length = stored.content_length
            digest = hashlib.sha256()
            head = b""
            while len(head) < SNIFF_BYTES and (data := stored.read(SNIFF_BYTES - len(head))):
                head += data
            filename = upload.filename or "unnamed"
            sniffed = guess_content_type(head, filename)
            candidate = Candidate(
                filename,
                upload.content_type or sniffed,  # declared, else what the content is
                head,
                stored.read,
                sniffed_type=sniffed,
                content_length=length,
            )
            _check_size(upload, length)
            validation.check_head(candidate)
            digest.update(candidate.head)
            read = len(candidate.head)
            while data := stored.read(_CHUNK):
                digest.update(data)
                read += len(data)
                if upload.max_size is not None and read > upload.max_size:
                    break  # refused below, without reading the rest
            candidate.content_length = read
            _check_size(upload, read)
            validation.check_end(candidate)
    except (ValidationFailed, UploadRefused):
        remove_paths([upload.path])
        raise
    checksum = digest.hexdigest()
    if upload.checksum is not None and upload.checksum != checksum:
        remove_paths([upload.path])
        raise UploadRefused(
            "checksum",
            f"the uploaded content's SHA-256 is {checksum}, not the {upload.checksum} declared",
        )
    return {
        "content_length": read,
        "checksum": checksum,
        "content_type": candidate.content_type,
    }


def _check_size(upload: DirectUpload, length: int | None) -> None:
    if length is None:
        return
    if upload.size is not None and length != upload.size:
        raise UploadRefused(
            "size", f"{length} bytes were uploaded, not the {upload.size} the slot was given for"
        )
    if upload.max_size is not None and length > upload.max_size:
        raise ValidationFailed(
            [
                Violation(
                    "max_size",
                    upload.max_size,
                    length,
                    f"{length} bytes, more than the {upload.max_size} allowed",
                )
            ]
        )


__all__ = ["StagedRecord", "is_upload_token", "refuse_unverified", "staged_file"]
