"""Direct uploads to S3 (SeaweedFS): slots for PUT, POST and multipart, the token assigned to
the row, the flush's verification of the staged object, and the tokens it refuses."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.database.schema import files as registry_files
from sa_depot.direct import DirectUploads
from sa_depot.direct.tokens import claims_of
from sa_depot.exceptions import UploadRefused, ValidationFailed
from sa_depot.io.boto3 import S3Storage
from tests.direct.conftest import (
    SECRET,
    Document,
    Other,
    keys_under,
    multipart_uploads,
    post,
    put,
    read,
)
from tests.s3.conftest import MiB

PDF = b"%PDF-1.4\n" + b"x" * 1000 + b"\n%%EOF\n"


def registered(session: Session, path: str) -> bool:
    found = session.execute(sa.select(registry_files.c.path).where(registry_files.c.path == path))
    return found.first() is not None


def test_put_slot_attaches_the_staged_object_in_place(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    body = b"hello from the browser\n" * 100
    slot = uploads.presigned_put(
        Document.content, filename="hello.txt", content_type="text/plain", size=len(body)
    )
    assert put(slot, body).status_code == 200
    doc = Document(content=slot.token)  # the token string, as a form sends it back
    session.add(doc)
    session.commit()
    assert doc.content is not None
    assert read(doc.content) == body
    assert doc.content.filename == "hello.txt"
    assert doc.content.content_length == len(body)
    assert doc.content.checksum == hashlib.sha256(body).hexdigest()
    # the row holds the staged object itself: no copy was made
    assert keys_under(s3_depot) == {doc.content.file_id}
    assert registered(session, doc.content.path)


def test_put_slot_signs_the_declared_size(s3_depot: S3Storage, uploads: DirectUploads) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain", size=10)
    assert put(slot, b"0123456789").status_code == 200
    other = uploads.presigned_put(Document.content, content_type="text/plain", size=10)
    assert put(other, b"0123456789 and more").status_code >= 400


def test_post_slot_bounds_the_size_by_its_policy(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_post(Document.small, filename="a.pdf", content_type="application/pdf")
    assert slot.fields["Content-Type"] == "application/pdf"
    too_big = uploads.presigned_post(Document.small, content_type="application/pdf")
    refused = post(too_big, b"%PDF-1.4\n" + b"x" * (MiB + 1))
    assert refused.status_code >= 400, refused.text
    assert post(slot, PDF, "a.pdf").status_code in {200, 201, 204}
    doc = Document(small=uploads.receive(slot.token))
    session.add(doc)
    session.commit()
    assert doc.small is not None and read(doc.small) == PDF
    assert doc.small.content_type == "application/pdf"


def test_multipart_slot_parts_listed_completed_and_attached(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    body = bytes(range(256)) * (5 * MiB // 256) + b"tail"
    slot = uploads.create_multipart(
        Document.content,
        filename="big.bin",
        content_type="application/octet-stream",
        checksum=hashlib.sha256(body).hexdigest(),
    )
    data = slot.as_dict()
    assert data["key"] == slot.token and data["uploadId"] == slot.upload_id
    assert slot.upload_id is not None
    etags = []
    for number, chunk in enumerate([body[: 5 * MiB], body[5 * MiB :]], start=1):
        signed = uploads.sign_part(slot.token, slot.upload_id, number)
        answer = requests.put(signed["url"], data=chunk, timeout=30)
        assert answer.status_code == 200
        etags.append({"PartNumber": number, "ETag": answer.headers["ETag"]})
    listed = uploads.list_parts(slot.token, slot.upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [
        (1, 5 * MiB),
        (2, len(body) - 5 * MiB),
    ]
    assert uploads.complete_multipart(slot.token, slot.upload_id, etags)["token"] == slot.token
    doc = Document(content=slot.token)
    session.add(doc)
    session.commit()
    assert doc.content is not None and read(doc.content) == body
    assert doc.content.filename == "big.bin"
    assert multipart_uploads(s3_depot) == []


def test_multipart_calls_need_the_token_of_that_upload(
    s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    first = uploads.create_multipart(Document.content, filename="a.bin")
    second = uploads.create_multipart(Document.content, filename="b.bin")
    assert first.upload_id is not None and second.upload_id is not None
    with pytest.raises(UploadRefused) as refused:
        uploads.sign_part(first.token, second.upload_id, 1)
    assert refused.value.reason == "other field"
    uploads.abort_multipart(first.token, first.upload_id)
    uploads.abort_multipart(second.token, second.upload_id)
    assert multipart_uploads(s3_depot) == []
    with pytest.raises(UploadRefused) as gone:
        uploads.list_parts(first.token, first.upload_id)
    assert gone.value.reason == "not staged"


def test_a_rolled_back_attach_leaves_the_object_staged_for_the_token(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"rolled back, then submitted again")
    session.add(Document(content=slot.token))
    session.flush()
    session.rollback()  # e.g. another field of the form failed its validation
    staged = {uploads.receive(slot.token).file_id}
    assert keys_under(s3_depot) == staged
    doc = Document(content=slot.token)  # the form submitted again with the same token
    session.add(doc)
    session.commit()
    assert (
        doc.content is not None and doc.content.file.read() == b"rolled back, then submitted again"
    )
    assert keys_under(s3_depot) == staged


def test_a_token_replayed_while_its_first_attach_rolls_back_loses_nothing(
    engine: sa.Engine, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    """Two requests hold one token: the first attaches it and rolls back, the second commits."""
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"double submit")
    with Session(engine) as first, Session(engine) as second:
        first.add(Document(content=slot.token))
        first.flush()
        doc = Document(content=slot.token)
        second.add(doc)
        first.rollback()
        second.commit()
        assert doc.content is not None and doc.content.file.read() == b"double submit"
    assert keys_under(s3_depot) == {uploads.receive(slot.token).file_id}


def test_a_replaced_direct_upload_goes_at_the_commit(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    first = uploads.presigned_put(Document.content, content_type="text/plain")
    put(first, b"first")
    doc = Document(content=first.token)
    session.add(doc)
    session.commit()
    second = uploads.presigned_put(Document.content, content_type="text/plain")
    put(second, b"second")
    doc.content = second.token
    session.commit()
    assert doc.content is not None and read(doc.content) == b"second"
    assert keys_under(s3_depot) == {doc.content.file_id}


# == refused tokens ==============================================================================
def test_a_forged_token_is_refused_at_the_assignment(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"content")
    # the payload changed to name another file (say, one a committed row holds)
    from itsdangerous import URLSafeSerializer

    signature = slot.token.rsplit(".", 1)[1]
    claims = URLSafeSerializer("any").loads_unsafe(slot.token[len("sadu1.") :])[1]
    claims["i"] = "00000000-0000-4000-8000-000000000000"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for forged in (f"sadu1.{forged_payload}.{signature}", slot.token[:-2] + "xx"):
        with pytest.raises(UploadRefused) as refused:
            Document(content=forged)
        assert refused.value.reason == "forged"
    # signed with another secret
    stranger = DirectUploads("another-secret-of-enough-length")
    other = stranger.presigned_put(Document.content, content_type="text/plain")
    with pytest.raises(UploadRefused) as refused:
        Document(content=other.token)
    assert refused.value.reason == "forged"
    assert isinstance(refused.value, PermissionError)


def test_an_expired_token_is_refused(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"late")
    with pytest.raises(UploadRefused) as refused:
        uploads.receive(slot.token, now=time.time() + uploads.expires_in + 1)
    assert refused.value.reason == "expired"
    upload = uploads.receive(slot.token)
    claims = claims_of(
        field=upload.field,
        storage=upload.storage,
        file_id=upload.file_id,
        expires=int(time.time()) - 1,
    )
    expired = uploads.signer.dump(claims)
    with pytest.raises(UploadRefused) as refused:
        Document(content=expired)
    assert refused.value.reason == "expired"


def test_a_token_of_another_field_is_refused_at_the_flush(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"for Document.content")
    session.add(Other(content=slot.token))
    with pytest.raises(UploadRefused) as refused:
        session.flush()
    assert refused.value.reason == "other field"
    session.rollback()
    # refused, it removed nothing: the right field still takes it
    doc = Document(content=slot.token)
    session.add(doc)
    session.commit()
    assert doc.content is not None and read(doc.content) == b"for Document.content"


def test_a_replayed_token_is_refused(
    session: Session, engine: sa.Engine, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"once")
    doc = Document(content=slot.token)
    session.add(doc)
    session.commit()
    with Session(engine) as other:
        other.add(Document(content=slot.token))
        with pytest.raises(UploadRefused) as refused:
            other.flush()
        assert refused.value.reason == "replayed"
        other.rollback()
    # the first row's file is untouched
    session.expire_all()
    assert doc.content is not None and read(doc.content) == b"once"
    # two rows of one flush
    again = uploads.presigned_put(Document.content, content_type="text/plain")
    put(again, b"twice")
    session.add_all([Document(content=again.token), Document(content=again.token)])
    with pytest.raises(UploadRefused) as refused:
        session.flush()
    assert refused.value.reason == "replayed"
    session.rollback()


def test_a_token_whose_row_was_deleted_cannot_bring_the_file_back(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    put(slot, b"deleted")
    doc = Document(content=slot.token)
    session.add(doc)
    session.commit()
    session.delete(doc)
    session.commit()
    session.add(Document(content=slot.token))
    with pytest.raises(UploadRefused) as refused:
        session.flush()
    assert refused.value.reason in {"replayed", "not staged"}
    session.rollback()


def test_nothing_uploaded_is_refused_and_removes_nothing(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.create_multipart(Document.content, filename="never.bin")
    session.add(Document(content=slot.token))
    with pytest.raises(UploadRefused) as refused:
        session.flush()
    assert refused.value.reason == "not staged"
    session.rollback()
    assert multipart_uploads(s3_depot) == [s3_depot.key(uploads.receive(slot.token).file_id)]


# == the field's validators and the declared checksum ===========================================
def test_content_breaking_the_validators_is_refused_and_removed(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")
    png = buffer.getvalue()
    slot = uploads.presigned_put(Document.small, filename="a.pdf", content_type="application/pdf")
    put(slot, png)
    session.add(Document(small=slot.token))
    with pytest.raises(ValidationFailed) as failed:
        session.flush()
    assert {v.rule for v in failed.value.violations} == {"content_type"}
    assert failed.value.violations[0].field == "Document.small"
    session.rollback()
    assert keys_under(s3_depot) == set()


def test_a_size_beyond_the_field_limit_is_refused(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    with pytest.raises(ValidationFailed):
        uploads.presigned_put(Document.small, content_type="text/plain", size=2 * MiB)
    slot = uploads.presigned_put(Document.small, content_type="text/plain")
    put(slot, b"a" * (MiB + 10))  # a PUT without a declared size: S3 takes it
    session.add(Document(small=slot.token))
    with pytest.raises(ValidationFailed) as failed:
        session.flush()
    assert [v.rule for v in failed.value.violations] == ["max_size"]
    session.rollback()
    assert keys_under(s3_depot) == set()


def test_a_checksum_mismatch_is_refused(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    declared = hashlib.sha256(b"what the client meant").hexdigest()
    slot = uploads.presigned_put(Document.content, content_type="text/plain", checksum=declared)
    put(slot, b"what arrived")
    session.add(Document(content=slot.token))
    with pytest.raises(UploadRefused) as refused:
        session.flush()
    assert refused.value.reason == "checksum"
    session.rollback()
    assert keys_under(s3_depot) == set()


def test_a_token_string_needs_a_configured_secret(session: Session, s3_depot: S3Storage) -> None:
    from sa_depot.exceptions import ConfigurationError

    uploads = DirectUploads(SECRET)
    slot = uploads.presigned_put(Document.content, content_type="text/plain")
    with pytest.raises(ConfigurationError):
        Document(content=slot.token)
    put(slot, b"received")
    doc = Document(content=uploads.receive(slot.token))  # a DirectUpload knows its signer
    session.add(doc)
    session.commit()
    assert doc.content is not None and read(doc.content) == b"received"


def test_an_undeclared_type_is_sniffed_from_the_content(
    session: Session, s3_depot: S3Storage, uploads: DirectUploads
) -> None:
    slot = uploads.presigned_put(Document.small, filename="scan")  # no type, no extension
    assert slot.headers == {"Content-Type": "application/octet-stream"}
    assert uploads.receive(slot.token).content_type is None
    put(slot, PDF)
    doc = Document(small=slot.token)
    session.add(doc)
    session.commit()
    assert doc.small is not None and doc.small.content_type == "application/pdf"
