"""Direct uploads to an :class:`~sa_depot.io.boto3.S3Storage`: presigned PUT and POST, and
presigned multipart uploads (the S3 calls behind Uppy's AwsS3 plugin).

Every URL is signed locally by boto3 (no request); creating, listing, completing and
aborting a multipart upload are one request each, made by the server with the storage's
credentials. Sources: S3 API reference (PutObject, CreateMultipartUpload, UploadPart,
ListParts, CompleteMultipartUpload, AbortMultipartUpload) and "Browser-based uploads using
POST (AWS Signature Version 4)" for the POST policy and its ``content-length-range``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sa_depot.exceptions import UploadRefused
from sa_depot.io.interfaces import FileInfo, utcnow
from sa_depot.io.objects import encode_metadata

if TYPE_CHECKING:  # sa_depot.io.boto3 needs Werkzeug, an optional dependency
    from sa_depot.io.boto3 import S3Storage

#: S3's limits: part numbers 1 to 10,000, and 5 GiB for one PUT or POST.
MAX_PART_NUMBER = 10_000
MAX_SINGLE_UPLOAD = 5 * 1024**3


def presigned_put(
    storage: S3Storage, file_id: str, content_type: str, size: int | None, expires_in: int
) -> dict[str, Any]:
    """``{'method': 'PUT', 'url', 'headers'}``: the client sends the content as the body of a
    PUT to ``url`` with exactly ``headers`` (the ``Content-Type`` is signed; so is the
    ``Content-Length`` when the size was declared, which S3 then enforces)."""
    params: dict[str, Any] = {"Bucket": storage.bucket, "Key": storage.key(file_id)}
    params["ContentType"] = content_type
    headers = {"Content-Type": content_type}
    if size is not None:
        params["ContentLength"] = size
    url = storage.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
    return {"method": "PUT", "url": url, "headers": headers}


def presigned_post(
    storage: S3Storage,
    file_id: str,
    content_type: str,
    min_size: int,
    max_size: int,
    expires_in: int,
) -> dict[str, Any]:
    """``{'method': 'POST', 'url', 'fields'}``: the client posts a ``multipart/form-data``
    form of ``fields`` followed by the file (as the last field, named ``file``). The policy
    makes S3 refuse a body outside ``[min_size, max_size]`` bytes or of another type."""
    key = storage.key(file_id)
    fields = {"Content-Type": content_type}
    conditions: list[Any] = [
        {"Content-Type": content_type},
        ["content-length-range", min_size, max_size],
    ]
    post = storage.client.generate_presigned_post(
        storage.bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
    )
    return {"method": "POST", "url": post["url"], "fields": dict(post["fields"])}


def create_multipart(
    storage: S3Storage, file_id: str, filename: str | None, content_type: str
) -> str:
    """Start a multipart upload of the object ``file_id`` with the headers and metadata the
    storage gives its own objects; return its ``UploadId``."""
    info = FileInfo(file_id, filename, content_type, utcnow())
    args = storage._object_args(info)
    response = storage._call(
        "start a direct multipart upload",
        "create_multipart_upload",
        file_id,
        Bucket=storage.bucket,
        Key=storage.key(file_id),
        Metadata=encode_metadata(info, with_checksum=False),
        **args,
    )
    return str(response["UploadId"])


def sign_part(
    storage: S3Storage, file_id: str, upload_id: str, part_number: int, expires_in: int
) -> str:
    """A presigned URL the client PUTs part ``part_number`` (1 to 10,000) to; S3 answers
    with the part's ``ETag`` header, which the client keeps for the completion."""
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise UploadRefused(
            "size", f"part numbers go from 1 to {MAX_PART_NUMBER}, not {part_number}"
        )
    url: str = storage.client.generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": storage.bucket,
            "Key": storage.key(file_id),
            "UploadId": upload_id,
            "PartNumber": part_number,
        },
        ExpiresIn=expires_in,
    )
    return url


def list_parts(storage: S3Storage, file_id: str, upload_id: str) -> list[dict[str, Any]]:
    """The parts uploaded so far: ``[{'PartNumber', 'Size', 'ETag'}]`` (what Uppy resumes
    from)."""
    from botocore.exceptions import BotoCoreError, ClientError

    parts: list[dict[str, Any]] = []
    pages = storage.client.get_paginator("list_parts").paginate(
        Bucket=storage.bucket, Key=storage.key(file_id), UploadId=upload_id
    )
    try:
        for page in pages:
            for part in page.get("Parts", []):
                parts.append(
                    {"PartNumber": part["PartNumber"], "Size": part["Size"], "ETag": part["ETag"]}
                )
    except ClientError as exc:
        _refuse_unknown_upload(exc)
        storage._raise(exc, "list the parts of a direct upload", file_id)
    except BotoCoreError as exc:
        storage._raise(exc, "list the parts of a direct upload", file_id)
    return parts


def complete_multipart(
    storage: S3Storage, file_id: str, upload_id: str, parts: Iterable[Mapping[str, Any]]
) -> None:
    """Assemble the object from ``parts`` (``[{'PartNumber': 1, 'ETag': '"..."'}]``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    numbered = sorted((int(p["PartNumber"]), str(p["ETag"])) for p in parts)
    listed = [{"PartNumber": number, "ETag": etag} for number, etag in numbered]
    if not listed:
        raise UploadRefused("not staged", "a multipart upload completes with one part at least")
    try:
        storage.client.complete_multipart_upload(
            Bucket=storage.bucket,
            Key=storage.key(file_id),
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},  # type: ignore[typeddict-item]
        )
    except ClientError as exc:
        _refuse_unknown_upload(exc)
        storage._raise(exc, "complete a direct upload", file_id)
    except BotoCoreError as exc:
        storage._raise(exc, "complete a direct upload", file_id)


def abort_multipart(storage: S3Storage, file_id: str, upload_id: str) -> None:
    """Abort the upload: S3 removes its parts."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        storage.client.abort_multipart_upload(
            Bucket=storage.bucket, Key=storage.key(file_id), UploadId=upload_id
        )
    except ClientError as exc:
        _refuse_unknown_upload(exc)
        storage._raise(exc, "abort a direct upload", file_id)
    except BotoCoreError as exc:
        storage._raise(exc, "abort a direct upload", file_id)


def _refuse_unknown_upload(exc: Exception) -> None:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in {
        "NoSuchUpload",
        "404",
    }:
        raise UploadRefused(
            "not staged", "the multipart upload is not in progress (completed, aborted or removed)"
        ) from exc


__all__ = [
    "MAX_PART_NUMBER",
    "MAX_SINGLE_UPLOAD",
    "abort_multipart",
    "complete_multipart",
    "create_multipart",
    "list_parts",
    "presigned_post",
    "presigned_put",
    "sign_part",
]
