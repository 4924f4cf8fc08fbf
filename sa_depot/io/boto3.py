"""Amazon S3 and S3-compatible stores (SeaweedFS, MinIO, Ceph, R2...) through boto3.

Each file is one object, ``<prefix><file_id>``; its filename, checksum and timestamps live in
the object's user metadata (the ``x-depot-*`` keys filedepot uses, so either library reads the
other's objects). Requests per operation:

* ``get``: one GetObject, whose response carries the metadata and a body that is read lazily;
  seeking closes the body and the next read issues a ranged GetObject (``If-Match`` the ETag
  of the first response, so a concurrent replace is reported instead of mixing two versions);
* ``delete``: one DeleteObject (S3 deletes are idempotent);
* ``create``/``replace`` up to ``multipart_threshold`` bytes: one PutObject, sent once the
  content (buffered, at most the threshold) has been hashed, so the checksum is in the metadata;
* larger content is sent as a multipart upload, ``multipart_concurrency`` parts at a time.
  S3 fixes an object's metadata when its upload starts, so the SHA-256 must be known before
  the first part:

  - content readable at any offset (a file on disk, bytes, a spooled upload) is hashed once,
    in order: the SHA-256 of the whole, for the metadata, and each part's SHA-256 and CRC32.
    It is then uploaded straight to its final key, each part read from where the content
    lies (``os.pread``, or a slice of the bytes) as it is sent, so that no part is held in
    memory. Each part goes with its CRC32, which the server checks, and what was sent must
    be what was hashed (the SHA-256 its request was signed with, or that of the bytes sent
    when the payload is not signed, and the CRC32 of the bytes sent), or the upload is
    aborted. An incomplete multipart upload is invisible, so the key appears at once and
    complete, or not at all;
  - other content that can be read twice (a seekable stream of another kind) is hashed
    first, then read again into part buffers (memory: about ``multipart_concurrency + 1``
    parts), and must hash the same, or the upload is aborted;
  - content that can be read only once (a stream from a socket) goes to a temporary key under
    ``<prefix>.sa-depot-uploads/``, and the completed object is then copied server-side
    (CopyObject, or UploadPartCopy above 5 GiB) to its final key with the full metadata, and
    the temporary object deleted.

  Either way a failed upload is aborted, and a replaced file keeps its previous version until
  the new one is complete.

An upload interrupted by a crash can leave an incomplete multipart upload or a temporary object
behind; neither is a file of the storage. :meth:`S3Storage.remove_incomplete` (or an S3
lifecycle rule on the ``.sa-depot-uploads/`` prefix) removes them.

The constructor makes no network call: the boto3 client is created, and the bucket created if
asked, on first use.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import json
import logging
import re
import threading
import uuid
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, unquote

from sa_depot.exceptions import ConfigurationError, FileNotFound, StorageError
from sa_depot.io.interfaces import (
    DEFAULT_CHUNK_SIZE,
    FileInfo,
    FileStorage,
    IncomingContent,
    ResponseOverrides,
    StoredFile,
)
from sa_depot.io.objects import (
    UPLOADS_DIR,
    Body,
    BodyStoredFile,
    decode_metadata,
    encode_filename,
    encode_metadata,
    iter_part_buffers,
    read_head,
)
from sa_depot.io.ranges import RangeReader, RangeSource
from sa_depot.serving.representation import describe

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3's limits: parts of 5 MiB at least (but the last), at most 10,000 parts, and CopyObject
#: copies objects of at most 5 GiB.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
MAX_SINGLE_COPY = 5 * GiB
_OBJECT_ID_RE = re.compile(r"\A[0-9a-f]{24}\Z")
PUBLIC_ACLS = frozenset({"public-read", "public-read-write"})
PRESIGNED = "presigned"


class S3Storage(FileStorage):
    """Files stored as objects of an S3 bucket.

    :param bucket: the bucket name (it must exist, unless ``create_bucket`` is true).
    :param prefix: prepended to every file id to make the object key (``'media/'``); it never
        appears in file ids.
    :param endpoint_url: the URL of an S3-compatible server (``'http://127.0.0.1:8333'``);
        ``None`` for AWS.
    :param region_name: the AWS region (``None``: boto3's configuration).
    :param access_key_id: with ``secret_access_key`` (and ``session_token``): explicit
        credentials. Leave them out to use boto3's standard chain (environment, profile,
        instance role...).
    :param policy: the canned ACL of new objects. ``'private'`` (the default) sends no ACL
        header: S3 objects are private by default, and buckets with ACLs disabled (the AWS
        default since 2023) refuse ACL headers. Any other canned ACL (``'public-read'``) is
        sent as is.
    :param storage_class: ``'STANDARD_IA'``, ``'INTELLIGENT_TIERING'``... (``None``: the
        bucket's default).
    :param server_side_encryption: ``'AES256'`` or ``'aws:kms'`` (with ``sse_kms_key_id``).
    :param extra_put_args: further arguments for PutObject, CreateMultipartUpload and
        CopyObject (``{'CacheControl': 'max-age=86400'}``); a JSON object when given as a string.
    :param create_bucket: create the bucket on first use if it does not exist.
    :param public_url: what :attr:`StoredFile.public_url` gives: ``None`` (serve files through
        the middleware), ``'presigned'`` (a URL signed for ``presigned_expires`` seconds), or a
        base URL (``'https://cdn.example.com'``) to which the object key is appended; a base URL
        requires a public ``policy``, since it would otherwise link to private objects unsigned.
    :param multipart_threshold: content larger than this is sent as a multipart upload.
    :param multipart_chunksize: the size of each part (5 MiB at least). A file or bytes is
        sent from where it lies, without part buffers; memory used by the upload of a stream
        is about ``max(multipart_threshold, (multipart_concurrency + 1) *
        multipart_chunksize)``.
    :param multipart_concurrency: how many parts of one upload are sent at once (1 or more;
        boto3's ``upload_fileobj`` sends 10).
    :param chunk_size: bytes read from the content, and from a response body, at a time.
    :param addressing_style: ``'path'`` or ``'virtual'`` (``None``: boto3 decides).
    :param connect_timeout: seconds to connect, passed to botocore.
    :param read_timeout: seconds to wait for a response, passed to botocore.
    :param max_attempts: attempts per request, the first included, passed to botocore (whose
        ``standard`` retry mode is used).
    """

    id_format = (
        "a UUID such as '1b4e28ba-2fa1-11d2-883f-0016d3cca427' (or the 24-hex-digit ObjectId "
        "of a file copied from GridFS)"
    )
    create_nothing_options = {"create_bucket": False}

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        policy: str = "private",
        storage_class: str | None = None,
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        extra_put_args: Mapping[str, Any] | str | None = None,
        create_bucket: bool = False,
        public_url: str | None = None,
        presigned_expires: int = 3600,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        multipart_concurrency: int = 2,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        addressing_style: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if importlib.util.find_spec("boto3") is None:
            raise ConfigurationError(
                "S3Storage needs boto3, which is not installed: pip install boto3 (or install "
                "sa-depot with its s3 extra, e.g. pip install -e '.[s3]' in a clone)"
            )
        if not isinstance(bucket, str) or len(bucket) < 3:
            raise ConfigurationError(
                f"S3Storage: bucket {bucket!r} is not a valid bucket name (3 to 63 characters)"
            )
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigurationError(
                "S3Storage: give both access_key_id and secret_access_key, or neither (to use "
                "boto3's standard credential chain)"
            )
        if multipart_chunksize < MIN_PART_SIZE:
            raise ConfigurationError(
                f"S3Storage: multipart_chunksize must be at least {MIN_PART_SIZE} bytes (5 MiB), "
                f"S3's minimum part size; got {multipart_chunksize}"
            )
        if chunk_size < 1:
            raise ConfigurationError(
                f"S3Storage: chunk_size must be a positive number of bytes, not {chunk_size}"
            )
        if multipart_threshold < 0:
            raise ConfigurationError("S3Storage: multipart_threshold cannot be negative")
        if multipart_concurrency < 1:
            raise ConfigurationError(
                f"S3Storage: multipart_concurrency must be 1 or more, not {multipart_concurrency}"
            )
        if presigned_expires <= 0 or presigned_expires > 7 * 24 * 3600:
            raise ConfigurationError(
                "S3Storage: presigned_expires must be between 1 second and 7 days (S3's limit)"
            )
        if public_url is not None and public_url != PRESIGNED:
            if not public_url.startswith(("https://", "http://")):
                raise ConfigurationError(
                    f"S3Storage: public_url {public_url!r} must be None, 'presigned' or a base "
                    "URL starting with https://"
                )
            if policy not in PUBLIC_ACLS:
                raise ConfigurationError(
                    f"S3Storage: public_url={public_url!r} would give unsigned links to objects "
                    f"stored with policy {policy!r}; use public_url='presigned', or "
                    "policy='public-read' if the files are meant to be public"
                )
        if isinstance(extra_put_args, str):
            try:
                extra_put_args = json.loads(extra_put_args)
            except ValueError as exc:
                raise ConfigurationError(
                    f"S3Storage: extra_put_args is not a JSON object: {exc}"
                ) from exc
        if extra_put_args is not None and not isinstance(extra_put_args, Mapping):
            raise ConfigurationError("S3Storage: extra_put_args must be a dict (or JSON object)")

        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.policy = policy
        self.public_url_mode = public_url
        self.presigned_expires = presigned_expires
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.multipart_concurrency = multipart_concurrency
        self.chunk_size = chunk_size
        self.create_bucket = create_bucket
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._session_token = session_token
        self.addressing_style = addressing_style
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        put_args: dict[str, Any] = {}
        if policy != "private":
            put_args["ACL"] = policy
        if storage_class:
            put_args["StorageClass"] = storage_class
        if server_side_encryption:
            put_args["ServerSideEncryption"] = server_side_encryption
        if sse_kms_key_id:
            put_args["SSEKMSKeyId"] = sse_kms_key_id
        put_args.update(extra_put_args or {})
        self._put_args = put_args
        #: The largest object copied with one CopyObject, and the part size of bigger copies
        #: (attributes so that tests can exercise the multipart copy with small files).
        self.max_single_copy = MAX_SINGLE_COPY
        self.copy_part_size = 1 * GiB
        #: Keys per ListObjectsV2 request (S3 returns at most 1,000).
        self.list_page_size = 1000
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()
        self._bucket_confirmed = False

    # -- the client --------------------------------------------------------------------------
    @property
    def client(self) -> S3Client:
        """The boto3 S3 client, created on first use (creating it may resolve credentials)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> S3Client:
        import boto3.session
        from botocore.config import Config

        s3_options: Any = (
            {"addressing_style": self.addressing_style} if self.addressing_style else None
        )
        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            s3=s3_options,
            signature_version="s3v4",
        )
        session = boto3.session.Session(
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            aws_session_token=self._session_token,
            region_name=self.region_name,
        )
        client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        client.meta.events.register("before-send.s3.UploadPart", _part_sending)
        if self.create_bucket:
            self._ensure_bucket(client)
        return client

    def _ensure_bucket(self, client: S3Client) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self.region_name or client.meta.region_name
        if region and region != "us-east-1" and self.endpoint_url is None:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            client.create_bucket(**kwargs)
        except ClientError as exc:
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou"}:
                self._raise(exc, "create the bucket")
        except BotoCoreError as exc:
            self._raise(exc, "create the bucket")
        self._bucket_confirmed = True

    def is_valid_id(self, file_id: str) -> bool:
        """UUIDs, and GridFS's ObjectIds so that files copied from GridFS keep their ids."""
        return super().is_valid_id(file_id) or _OBJECT_ID_RE.match(file_id) is not None

    # -- helpers -----------------------------------------------------------------------------
    @property
    def description(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{super().description} (S3 bucket {self.bucket!r}{where})"

    def key(self, file_id: str) -> str:
        """The object key of ``file_id``."""
        return self.prefix + file_id

    def _raise(self, exc: Exception, action: str, file_id: str | None = None) -> NoReturn:
        raise StorageError(self.description, _explain(exc, action, file_id)) from exc

    def _call(self, action: str, method: str, file_id: str | None = None, **kwargs: Any) -> Any:
        """Call a client method, turning botocore's exceptions into StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, action, file_id)

    def _object_args(self, info: FileInfo) -> dict[str, Any]:
        """The object's own headers, then the storage's put arguments (ACL, class...).

        The object is stored with the ``Content-Type`` and ``Content-Disposition`` the
        middleware would serve it with under the default policy (attachment for risky types,
        RFC 6266 filename), so that a URL followed without response overrides, an unsigned
        public URL or ``UploadedFile.url``'s presigned one, keeps the filename and the
        disposition decision. ``extra_put_args`` may override them.
        """
        # the name as the metadata records it (shortened to fit S3's limit, extension kept)
        name = unquote(encode_filename(info.filename)) if info.filename else None
        headers = {
            "ContentType": info.content_type,
            "ContentDisposition": describe(name, info.content_type).content_disposition,
        }
        return {**headers, **self._put_args}

    def _info_from(self, file_id: str, response: Mapping[str, Any]) -> FileInfo:
        return decode_metadata(
            file_id,
            response.get("Metadata"),
            content_type=response.get("ContentType"),
            content_length=response.get("ContentLength"),
            stored_at=response.get("LastModified"),
        )

    def _confirm_bucket(self) -> None:
        """After a 404 on HEAD (which has no error code), tell a missing bucket apart."""
        if not self._bucket_confirmed:
            self._call("check the bucket", "head_bucket", Bucket=self.bucket)
            self._bucket_confirmed = True

    # -- the primitives ----------------------------------------------------------------------
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        source = content.random_access()
        if source is not None and source.length > self.multipart_threshold:
            self._write_ranges(content, source)
            self._bucket_confirmed = True
            return
        head = read_head(content, self.multipart_threshold)
        if content.finished:
            self._put(content.info, b"".join(head))
        else:
            self._write_multipart(content, head)
        self._bucket_confirmed = True

    def _put(self, info: FileInfo, body: bytes) -> None:
        """One PutObject of the whole content, with its metadata."""
        self._call(
            "upload",
            "put_object",
            info.file_id,
            Bucket=self.bucket,
            Key=self.key(info.file_id),
            Body=body,
            Metadata=encode_metadata(info),
            **self._object_args(info),
        )

    def _write_multipart(self, content: IncomingContent, head: list[bytes]) -> None:
        info = content.info
        ahead = content.checksum_ahead()
        if ahead is None:  # read once only: the checksum follows the content (see module docs)
            temp_key = f"{self.prefix}{UPLOADS_DIR}{info.file_id}.{uuid.uuid4().hex}"
            metadata = encode_metadata(info, with_checksum=False)
            with self._multipart("upload", info, temp_key, metadata) as (upload_id, parts):
                self._send_parts(content, head, temp_key, upload_id, parts)
            try:
                self._copy_into_place(temp_key, info)
            finally:
                self._remove_quietly(temp_key)
            return
        expected = info.copy()
        expected.checksum, expected.content_length = ahead
        key = self.key(info.file_id)
        with self._multipart("upload", info, key, encode_metadata(expected)) as (upload_id, parts):
            self._send_parts(content, head, key, upload_id, parts)
            if (info.checksum, info.content_length) != ahead:  # aborted: nothing visible
                raise StorageError(
                    self.description,
                    f"the content of file {info.file_id!r} changed while it was being uploaded "
                    f"({ahead[1]} bytes hashed first, {info.content_length} sent, checksums "
                    "differ): nothing was stored. Upload content that stays unchanged.",
                )

    def _write_ranges(self, content: IncomingContent, source: RangeSource) -> None:
        """A multipart upload of content readable at any offset (a file, bytes, a spooled
        upload) straight to its final key: hash it once, in order (the whole content's SHA-256
        for the metadata, and each part's SHA-256 and CRC32 alongside, in a second thread),
        then send its parts as views of the source, ``multipart_concurrency`` at a time, no
        part held in memory. Each part must arrive as it was hashed (see :meth:`_upload_range`),
        or the upload is aborted, leaving nothing visible."""
        info = content.info
        hasher = _PartHasher(self.multipart_chunksize)
        content.read_through(source, also=hasher.update)
        digests = hasher.finish()
        if not digests:  # the file was emptied after its size was read: no part to send
            self._put(info, b"")
            return
        if len(digests) > MAX_PARTS:
            raise StorageError(
                self.description,
                f"file {info.file_id!r} needs more than {MAX_PARTS} parts of "
                f"{self.multipart_chunksize} bytes: raise multipart_chunksize",
            )
        key = self.key(info.file_id)
        with self._multipart("upload", info, key, encode_metadata(info)) as (upload_id, parts):
            with ThreadPoolExecutor(self.multipart_concurrency, "sa-depot-s3-part") as pool:
                futures = [
                    pool.submit(self._upload_range, info.file_id, key, upload_id, source, digest)
                    for digest in digests
                ]
                try:
                    parts.extend(future.result() for future in as_completed(futures))
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
            parts.sort(key=lambda part: int(part["PartNumber"]))

    def _upload_range(
        self, file_id: str, key: str, upload_id: str, source: RangeSource, digest: _PartDigest
    ) -> dict[str, Any]:
        """Send one part as a view of ``source``, with the CRC32 hashed first (the server
        checks the bytes it receives against it), then check that what was sent is what was
        hashed: the SHA-256 the request was signed with (botocore signs the payload over
        HTTP) or, unsigned, the SHA-256 of the bytes sent; and the CRC32 of the bytes sent."""
        body = RangeReader(source, digest.offset, digest.length)
        response = self._call(
            f"upload part {digest.number}",
            "upload_part",
            file_id,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=digest.number,
            Body=body,
            ChecksumCRC32=base64.b64encode(digest.crc32.to_bytes(4, "big")).decode("ascii"),
        )
        sent, crc32, sha256 = body.sent()
        if (sent, crc32, sha256) != (digest.length, digest.crc32, digest.sha256):
            raise StorageError(
                self.description,
                f"the content of file {file_id!r} changed while it was being uploaded (part "
                f"{digest.number}, {digest.length} bytes from offset {digest.offset}, was "
                "sent other than hashed): nothing was stored. Upload content that stays "
                "unchanged.",
            )
        return {"PartNumber": digest.number, "ETag": response["ETag"]}

    def _send_parts(
        self,
        content: IncomingContent,
        head: list[bytes],
        key: str,
        upload_id: str,
        parts: list[Any],
    ) -> None:
        """Upload ``content`` (after ``head``) as the parts of ``upload_id``,
        ``multipart_concurrency`` at a time, reading the next part while they go; append
        ``{"PartNumber", "ETag"}`` of each to ``parts``, in order."""
        file_id = content.info.file_id
        in_flight: set[Future[dict[str, Any]]] = set()

        def collect(done: set[Future[dict[str, Any]]]) -> None:
            for future in done:
                in_flight.discard(future)
                parts.append(future.result())

        with ThreadPoolExecutor(self.multipart_concurrency, "sa-depot-s3-part") as pool:
            try:
                for number, part in enumerate(
                    iter_part_buffers(content, head, self.multipart_chunksize), start=1
                ):
                    if number > MAX_PARTS:
                        raise StorageError(
                            self.description,
                            f"file {file_id!r} needs more than {MAX_PARTS} parts of "
                            f"{self.multipart_chunksize} bytes: raise multipart_chunksize",
                        )
                    while len(in_flight) >= self.multipart_concurrency:
                        collect(wait(in_flight, return_when=FIRST_COMPLETED).done)
                    in_flight.add(
                        pool.submit(self._upload_part, file_id, key, upload_id, number, part)
                    )
                    del part  # the pool's task holds it while it is sent, and no longer
                collect(wait(in_flight).done)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        parts.sort(key=lambda part: int(part["PartNumber"]))

    def _upload_part(
        self, file_id: str, key: str, upload_id: str, number: int, body: bytearray
    ) -> dict[str, Any]:
        response = self._call(
            f"upload part {number}",
            "upload_part",
            file_id,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _copy_into_place(self, temp_key: str, info: FileInfo) -> None:
        key = self.key(info.file_id)
        source = {"Bucket": self.bucket, "Key": temp_key}
        size = info.content_length or 0
        if size <= self.max_single_copy:
            self._call(
                "copy the uploaded object into place",
                "copy_object",
                info.file_id,
                Bucket=self.bucket,
                Key=key,
                CopySource=source,
                MetadataDirective="REPLACE",
                Metadata=encode_metadata(info),
                **self._object_args(info),
            )
            return
        with self._multipart("copy", info, key, encode_metadata(info)) as (upload_id, parts):
            for number, start in enumerate(range(0, size, self.copy_part_size), start=1):
                end = min(start + self.copy_part_size, size) - 1
                response = self._call(
                    f"copy part {number}",
                    "upload_part_copy",
                    info.file_id,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})

    @contextlib.contextmanager
    def _multipart(
        self, what: str, info: FileInfo, key: str, metadata: dict[str, str]
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """A multipart upload (``what``: "upload" or "copy") to ``key``: yields its id and the
        list the caller appends ``{"PartNumber", "ETag"}`` to; completes it when the block ends,
        or aborts it if the block raises, so that no partial object ever becomes visible."""
        upload = self._call(
            f"start a multipart {what}",
            "create_multipart_upload",
            info.file_id,
            Bucket=self.bucket,
            Key=key,
            Metadata=metadata,
            **self._object_args(info),
        )
        upload_id: str = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            yield upload_id, parts
            self._call(
                f"complete the multipart {what}",
                "complete_multipart_upload",
                info.file_id,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort_upload(key, upload_id)
            raise

    def _abort_upload(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload after a failure; the failure itself is what gets raised."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "%s: could not abort the multipart upload of %s (%s); it is invisible, and "
                "remove_incomplete() or a lifecycle rule removes it",
                self.description,
                key,
                exc,
            )

    def _remove_quietly(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "%s: could not delete the temporary object %s (%s); "
                "remove_incomplete() removes it later",
                self.description,
                key,
                exc,
            )

    def _open(self, file_id: str) -> StoredFile:
        response = self._get_object(file_id, self.key(file_id))
        self._bucket_confirmed = True
        return S3StoredFile(self, self._info_from(file_id, response), response)

    def _get_object(self, file_id: str, key: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                raise FileNotFound(self.description, file_id) from exc
            self._raise(exc, "read", file_id)
        except BotoCoreError as exc:
            self._raise(exc, "read", file_id)

    def _delete(self, file_id: str) -> None:
        self._call("delete", "delete_object", file_id, Bucket=self.bucket, Key=self.key(file_id))

    def _head(self, file_id: str) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self.key(file_id))
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                self._confirm_bucket()
                return None
            self._raise(exc, "look up", file_id)
        except BotoCoreError as exc:
            self._raise(exc, "look up", file_id)
        self._bucket_confirmed = True
        return response

    def _exists(self, file_id: str) -> bool:
        return self._head(file_id) is not None

    def info(self, file_or_id: StoredFile | str) -> FileInfo:
        """The metadata of a file, with one HEAD request."""
        file_id = self.fileid(file_or_id)
        response = self._head(file_id)
        if response is None:
            raise FileNotFound(self.description, file_id)
        return self._info_from(file_id, response)

    def _iter_ids(self) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix,  # no Delimiter: keys such as 'acme/2026/<uuid>.pdf' nest
            PaginationConfig={"PageSize": self.list_page_size},
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    file_id = item["Key"][len(self.prefix) :]
                    if self.is_valid_id(file_id):
                        yield file_id
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "list the files")

    # -- maintenance -------------------------------------------------------------------------
    def remove_incomplete(self, older_than: timedelta = timedelta(days=1)) -> list[str]:
        """Abort multipart uploads and delete temporary objects left by interrupted uploads.

        Only those started more than ``older_than`` ago are touched, so that uploads in
        progress are left alone (a day by default: large uploads can take hours). Returns the
        keys removed. The garbage collector calls it; an S3 lifecycle rule on
        ``<prefix>.sa-depot-uploads/`` (expire objects, abort incomplete multipart uploads)
        does the same job.

        Multipart uploads straight to a file's own key (a browser's direct upload,
        :mod:`sa_depot.direct`, left unfinished) are aborted too, which removes their parts.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        cutoff = datetime.now(timezone.utc) - older_than
        uploads_prefix = self.prefix + UPLOADS_DIR
        removed: list[str] = []
        try:
            uploads = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for uploads_page in uploads:
                for upload in uploads_page.get("Uploads", []):
                    key = upload["Key"]
                    ours = key.startswith(uploads_prefix) or self.is_valid_id(
                        key[len(self.prefix) :]
                    )
                    if ours and upload["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed.append(upload["Key"])
            objects = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=uploads_prefix
            )
            for page in objects:
                for item in page.get("Contents", []):
                    if item["LastModified"] < cutoff:
                        self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                        removed.append(item["Key"])
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "remove incomplete uploads")
        return removed

    # -- URLs --------------------------------------------------------------------------------
    def public_url(
        self, file_or_id: StoredFile | str, *, response: ResponseOverrides | None = None
    ) -> str | None:
        """A URL serving the file without the middleware, per the ``public_url`` option:
        signed locally (no request) when presigned, so a fresh one costs nothing.

        ``response`` headers travel in a presigned URL as ``response-content-type`` and
        ``response-content-disposition`` (S3 API reference, GetObject). An unsigned base URL
        cannot carry them: with ``response`` given it is ``None``, unless ``file_or_id`` is a
        file opened from this storage whose object already sends exactly those headers."""
        key = self.key(self.fileid(file_or_id))
        if self.public_url_mode is None:
            return None
        if self.public_url_mode == PRESIGNED:
            params = {"Bucket": self.bucket, "Key": key}
            if response is not None and response.content_type:
                params["ResponseContentType"] = response.content_type
            if response is not None and response.content_disposition:
                params["ResponseContentDisposition"] = response.content_disposition
            url: str = self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=self.presigned_expires
            )
            return url
        if response is not None and not (
            isinstance(file_or_id, S3StoredFile)
            and file_or_id.storage is self
            and file_or_id.object_headers == response
        ):
            return None
        return f"{self.public_url_mode.rstrip('/')}/{quote(key)}"


class S3StoredFile(BodyStoredFile):
    """An object being read: the body of the first GetObject, then ranged GETs after a seek."""

    def __init__(self, storage: S3Storage, info: FileInfo, response: Mapping[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        self.read_errors = (BotoCoreError, HTTPError)
        super().__init__(
            info, int(response.get("ContentLength") or 0), storage.description, response["Body"]
        )
        self._storage = storage
        self._key = storage.key(info.file_id)
        self._etag: str | None = response.get("ETag")
        #: The headers the object itself is served with (its ``ContentType`` and
        #: ``ContentDisposition``), what a URL without response overrides answers.
        self.object_headers = ResponseOverrides(
            content_type=response.get("ContentType"),
            content_disposition=response.get("ContentDisposition"),
        )

    @property
    def storage(self) -> S3Storage:
        """The storage this file was opened from."""
        return self._storage

    @property
    def public_url(self) -> str | None:
        return self._storage.public_url(self.file_id)

    def _open_body(self, position: int) -> Body:
        extra = {"IfMatch": self._etag} if self._etag else {}
        response = self._storage._get_object(
            self.file_id, self._key, Range=f"bytes={position}-", **extra
        )
        body: Body = response["Body"]
        return body


@dataclass
class _PartDigest:
    """One part of a content as it was hashed: its number (from 1), offset and length in
    bytes, SHA-256 (hex) and CRC32."""

    number: int
    offset: int
    length: int
    sha256: str
    crc32: int


class _PartHasher:
    """The SHA-256 and CRC32 of each ``part_size`` bytes of a content fed in order."""

    def __init__(self, part_size: int) -> None:
        self._part_size = part_size
        self._digests: list[_PartDigest] = []
        self._offset = 0
        self._new_part()

    def _new_part(self) -> None:
        self._sha256 = hashlib.sha256()
        self._crc32 = 0
        self._filled = 0

    def _close_part(self) -> None:
        self._digests.append(
            _PartDigest(
                len(self._digests) + 1,
                self._offset,
                self._filled,
                self._sha256.hexdigest(),
                self._crc32,
            )
        )
        self._offset += self._filled
        self._new_part()

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            piece = view[: self._part_size - self._filled]
            self._sha256.update(piece)
            self._crc32 = zlib.crc32(piece, self._crc32)
            self._filled += len(piece)
            view = view[len(piece) :]
            if self._filled == self._part_size:
                self._close_part()

    def finish(self) -> list[_PartDigest]:
        """The parts' digests, the last (shorter) one closed."""
        if self._filled:
            self._close_part()
        return self._digests


_HEX_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def _part_sending(request: Any, **kwargs: Any) -> None:
    """botocore's ``before-send`` hook for UploadPart: tell a part's :class:`RangeReader`
    that the request is signed and its next pass is the one sent, with the SHA-256 the
    payload was signed with (over HTTP) so that it need not hash the part again."""
    body = request.body
    if isinstance(body, RangeReader):
        signed = request.headers.get("X-Amz-Content-SHA256")
        if isinstance(signed, bytes):
            signed = signed.decode("ascii", "replace")
        body.sending(signed_sha256=signed if signed and _HEX_SHA256_RE.match(signed) else None)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_CLIENT_ERROR_HINTS = {
    "NoSuchBucket": "the bucket does not exist: create it, or pass create_bucket=True",
    "AccessDenied": (
        "access denied: check the credentials and that they may s3:GetObject, s3:PutObject, "
        "s3:DeleteObject and s3:ListBucket on the bucket (without s3:ListBucket, S3 answers "
        "AccessDenied for missing files)"
    ),
    "InvalidAccessKeyId": "the access key id is unknown to the server: check access_key_id",
    "SignatureDoesNotMatch": (
        "the request signature does not match: check secret_access_key (and region_name)"
    ),
    "ExpiredToken": "the session token has expired: renew the credentials",
    "InvalidToken": "the session token is invalid: check session_token",
    "PreconditionFailed": "the file was replaced while it was being read: open it again",
    "SlowDown": "the server asks to slow down (throttling): retry later",
    "BadDigest": (
        "the bytes the server received do not match their checksum: the content changed "
        "while it was being uploaded, or was damaged on the way; upload it again"
    ),
}


def _explain(exc: Exception, action: str, file_id: str | None) -> str:
    """A message naming what was attempted and why it failed, with what to do."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    what = f"{action} {file_id!r}" if file_id else action
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        hint = _CLIENT_ERROR_HINTS.get(code)
        if hint is None and status == 403:
            hint = _CLIENT_ERROR_HINTS["AccessDenied"]
        if hint is None and status == 404 and action == "check the bucket":
            hint = _CLIENT_ERROR_HINTS["NoSuchBucket"]
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        detail = f"{code or status}: {message}"
        return f"{what} failed: {hint} ({detail})" if hint else f"{what} failed: {detail}"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return f"{what} failed: cannot connect to the server, is it running? ({exc})"
    if isinstance(exc, ConnectionClosedError):
        return f"{what} failed: the server closed the connection ({exc})"
    if isinstance(exc, ReadTimeoutError):
        return f"{what} failed: the server did not answer in time ({exc})"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return (
            f"{what} failed: no usable credentials; pass access_key_id and secret_access_key, "
            f"or configure boto3 (AWS_ACCESS_KEY_ID..., ~/.aws/credentials) ({exc})"
        )
    return f"{what} failed: {type(exc).__name__}: {exc}"
