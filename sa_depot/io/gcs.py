"""Google Cloud Storage, through the official client library (``google-cloud-storage``).

Each file is one object, ``<prefix><file_id>``, laid out as filedepot 0.12.0's
``depot.io.gcs.GCSStorage`` lays it out: the object's content type is the file's, and its
custom metadata holds ``x-depot-filename`` (percent-encoded UTF-8), ``x-depot-modified``
(``'%Y-%m-%d %H:%M:%S'``, UTC) and ``x-depot-content-type``; sa_depot adds ``x-depot-sha256``
and ``x-depot-extra``. Either library reads the other's objects.

Requests per operation:

* ``get``: one metadata GET (objects.get), then one media GET pinned to the generation it
  named, whose body is read as you read. A replace in between (the generation is gone) is
  retried from the start, so metadata and content always belong together; a seek issues a
  ranged GET of the same generation, and a file replaced meanwhile raises a
  :class:`~sa_depot.exceptions.StorageError` instead of mixing two versions.
* ``info``, ``exists``: one metadata GET. ``delete``: one DELETE.
* ``create``/``replace`` up to ``upload_threshold`` bytes: one multipart upload carrying
  content and metadata, checksum included.
* larger content streams as a resumable upload (``Blob.open('wb')``, one request per
  ``upload_chunk_size``) to a temporary object under ``<prefix>.sa-depot-uploads/``. The
  SHA-256 is known only at the end, so the finished object is then rewritten (objects.rewrite,
  a metadata-only operation within a bucket) to its final name with the full metadata, and the
  temporary object deleted. The final object appears complete, with its checksum, or not at all.
  A failed upload is cancelled; an interrupted one leaves at most a temporary object, which
  :meth:`GCSStorage.remove_incomplete` removes.

The constructor makes no network call: credentials given as a dict or a key file are parsed,
and the client is created on first use (Application Default Credentials are looked up then).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn
from urllib.parse import quote

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
    encode_metadata,
    read_head,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Resumable upload chunks must be multiples of 256 KiB (GCS JSON API).
UPLOAD_CHUNK_MULTIPLE = 256 * 1024
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
#: filedepot's extra metadata key: the content type, also kept as the object's own.
META_CONTENT_TYPE = "x-depot-content-type"
#: filedepot's two values of ``policy``.
PRIVATE = "private"
PUBLIC_READ = "public-read"
SIGNED = "signed"
#: V4 signed URLs live 7 days at most.
MAX_SIGNED_EXPIRES = 7 * 24 * 3600
#: How often a read retries when the object was replaced between its metadata and its content.
_OPEN_ATTEMPTS = 3


class GCSStorage(FileStorage):
    """Files stored as objects of a Google Cloud Storage bucket.

    The first six parameters are filedepot's, in filedepot's order, so that a filedepot
    configuration (``depot.backend = depot.io.gcs.GCSStorage`` and its ``depot.`` keys) works
    unchanged.

    :param project_id: the Google Cloud project (default: the credentials' project).
    :param credentials: a service account key as a dict, the path of its JSON file (or the JSON
        text itself), a ``google.auth`` credentials object, or ``None``: the key file named by
        ``GOOGLE_APPLICATION_CREDENTIALS``, else Application Default Credentials on first use
        (anonymous against an emulator's ``endpoint_url``).
    :param bucket: the bucket name (it must exist, unless ``create_bucket`` is true).
    :param policy: ``'private'`` (the default; filedepot's default was ``'public-read'``) or
        ``'public-read'``: new objects get the ``publicRead`` predefined ACL (buckets with
        uniform bucket-level access refuse ACLs: grant ``allUsers`` the Storage Object Viewer
        role on the bucket instead and keep ``'private'``).
    :param storage_class: ``'STANDARD'``, ``'NEARLINE'``, ``'COLDLINE'``, ``'ARCHIVE'`` (``None``:
        the bucket's default).
    :param prefix: prepended to every file id to make the object name (``'media/'``).
    :param endpoint_url: the URL of the API (``None``: Google's, or ``STORAGE_EMULATOR_HOST``);
        an emulator's, such as ``'http://127.0.0.1:4443'``.
    :param create_bucket: create the bucket on first use if it does not exist.
    :param public_url: what :meth:`public_url` gives: ``None`` (serve through the
        middleware), ``'signed'`` (a V4 signed URL valid ``signed_url_expires`` seconds, which
        needs service account credentials: they hold the signing key) or a base URL to which
        the object name is appended (needs ``policy='public-read'``).
    :param signed_url_expires: lifetime of signed URLs, in seconds (7 days at most).
    :param upload_threshold: content larger than this is sent as a resumable upload.
    :param upload_chunk_size: bytes per request of a resumable upload (a multiple of 256 KiB);
        an upload holds about ``max(upload_threshold, upload_chunk_size)`` in memory.
    :param chunk_size: bytes read from the content, and from a download, at a time.
    :param timeout: seconds to wait for the server to connect or answer, per request.
    :param retry_timeout: seconds during which failed requests are retried (the library's
        exponential backoff).
    """

    def __init__(
        self,
        project_id: str | None = None,
        credentials: Mapping[str, Any] | str | Any | None = None,
        bucket: str | None = None,
        policy: str | None = None,
        storage_class: str | None = None,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        create_bucket: bool = False,
        public_url: str | None = None,
        signed_url_expires: int = 3600,
        upload_threshold: int = 8 * MiB,
        upload_chunk_size: int = 8 * MiB,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = 60.0,
        retry_timeout: float = 60.0,
    ) -> None:
        if importlib.util.find_spec("google.cloud.storage") is None:
            raise ConfigurationError(
                "GCSStorage needs google-cloud-storage, which is not installed: "
                "pip install 'sa-depot[gcs]'"
            )
        if not isinstance(bucket, str) or not 3 <= len(bucket) <= 222:
            raise ConfigurationError(
                f"GCSStorage: bucket {bucket!r} is not a valid bucket name (3 to 63 characters, "
                "or up to 222 with dots)"
            )
        policy = policy or PRIVATE
        if policy not in (PRIVATE, PUBLIC_READ):
            raise ConfigurationError(
                f"GCSStorage: policy {policy!r} must be 'private' or 'public-read'"
            )
        if upload_chunk_size <= 0 or upload_chunk_size % UPLOAD_CHUNK_MULTIPLE:
            raise ConfigurationError(
                f"GCSStorage: upload_chunk_size must be a positive multiple of 256 KiB "
                f"({UPLOAD_CHUNK_MULTIPLE} bytes), as GCS requires; got {upload_chunk_size}"
            )
        if upload_threshold < 0:
            raise ConfigurationError("GCSStorage: upload_threshold cannot be negative")
        if chunk_size < 1:
            raise ConfigurationError(
                f"GCSStorage: chunk_size must be a positive number of bytes, not {chunk_size}"
            )
        if not 0 < signed_url_expires <= MAX_SIGNED_EXPIRES:
            raise ConfigurationError(
                "GCSStorage: signed_url_expires must be between 1 second and 7 days (the limit "
                "of V4 signed URLs)"
            )
        if public_url == "presigned":  # S3Storage's word for it
            public_url = SIGNED
        if public_url is not None and public_url != SIGNED:
            if not public_url.startswith(("https://", "http://")):
                raise ConfigurationError(
                    f"GCSStorage: public_url {public_url!r} must be None, 'signed' or a base URL "
                    "starting with https://"
                )
            if policy != PUBLIC_READ:
                raise ConfigurationError(
                    f"GCSStorage: public_url={public_url!r} would give unsigned links to private "
                    "objects; use public_url='signed', or policy='public-read' if the files are "
                    "meant to be public"
                )
        self.project_id = project_id
        self.bucket_name = bucket
        self.policy = policy
        self.storage_class = storage_class
        self.prefix = prefix
        self.endpoint_url = (endpoint_url or _emulator_host() or DEFAULT_ENDPOINT).rstrip("/")
        self.create_bucket = create_bucket
        self.public_url_mode = public_url
        self.signed_url_expires = signed_url_expires
        self.upload_threshold = upload_threshold
        self.upload_chunk_size = upload_chunk_size
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.retry_timeout = retry_timeout
        self._credentials = _load_credentials(credentials)
        self._anonymous = self._credentials is None and (
            endpoint_url is not None or _emulator_host() is not None
        )
        self._client: Any = None
        self._session: Any = None
        self._client_lock = threading.Lock()
        self._bucket_confirmed = False
        #: Names per listing request (GCS returns at most 1,000).
        self.list_page_size = 1000

    # -- the client --------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``google.cloud.storage.Client``, created on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import google.auth
        from google.auth.credentials import AnonymousCredentials
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import storage

        credentials = self._credentials
        project = self.project_id
        if credentials is None and self._anonymous:
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        elif credentials is None:
            try:
                credentials, default_project = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/devstorage.read_write"]
                )
            except GoogleAuthError as exc:
                raise StorageError(
                    self.description,
                    "no credentials: pass credentials (a service account key as a dict or a "
                    "file path), set GOOGLE_APPLICATION_CREDENTIALS, or run 'gcloud auth "
                    f"application-default login' ({exc})",
                ) from exc
            project = project or default_project
            self._credentials = credentials
        project = project or getattr(credentials, "project_id", None) or "sa-depot"
        client = storage.Client(
            project=project,
            credentials=credentials,
            client_options={"api_endpoint": self.endpoint_url},
        )
        self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        if self.create_bucket:
            self._ensure_bucket(client)
        return client

    def _ensure_bucket(self, client: Any) -> None:
        from google.api_core.exceptions import Conflict

        try:
            client.create_bucket(self.bucket_name, retry=self._retry(), timeout=self.timeout)
        except Conflict:
            pass  # it exists already
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "create the bucket")
        self._bucket_confirmed = True

    @property
    def bucket(self) -> Any:
        """The ``google.cloud.storage.Bucket`` (no request)."""
        return self.client.bucket(self.bucket_name)

    def _retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.retry_timeout)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def description(self) -> str:
        return f"{super().description} (GCS bucket {self.bucket_name!r} at {self.endpoint_url})"

    def key(self, file_id: str) -> str:
        """The object name of ``file_id``."""
        return self.prefix + file_id

    def _raise(self, exc: BaseException, action: str, file_id: str | None = None) -> NoReturn:
        raise StorageError(self.description, _explain(exc, action, file_id)) from exc

    def _info_from(self, file_id: str, blob: Any) -> FileInfo:
        return decode_metadata(
            file_id,
            blob.metadata,
            content_type=blob.content_type,
            content_length=blob.size,
            stored_at=blob.updated,
        )

    def _new_blob(self, name: str, info: FileInfo, *, with_checksum: bool) -> Any:
        blob = self.bucket.blob(name)
        metadata = encode_metadata(info, with_checksum=with_checksum)
        metadata[META_CONTENT_TYPE] = info.content_type  # what filedepot reads
        blob.metadata = metadata
        blob.content_type = info.content_type
        if self.storage_class:
            blob.storage_class = self.storage_class
        return blob

    @property
    def _predefined_acl(self) -> str | None:
        return "publicRead" if self.policy == PUBLIC_READ else None

    def _fetch(self, file_id: str) -> Any:
        """The object's metadata (a Blob), or ``None`` if absent."""
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(self.key(file_id))
        try:
            blob.reload(retry=self._retry(), timeout=self.timeout)
        except NotFound:
            self._confirm_bucket()
            return None
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "look up", file_id)
        self._bucket_confirmed = True
        return blob

    def _confirm_bucket(self) -> None:
        """After a 404, tell a missing bucket apart from a missing object (once)."""
        if self._bucket_confirmed:
            return
        try:
            exists = self.bucket.exists(retry=self._retry(), timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "check the bucket")
        if not exists:
            raise StorageError(
                self.description,
                "the bucket does not exist: create it, or pass create_bucket=True",
            )
        self._bucket_confirmed = True

    # -- the primitives ----------------------------------------------------------------------
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        head = read_head(content, self.upload_threshold)
        info = content.info
        if content.finished:
            blob = self._new_blob(self.key(info.file_id), info, with_checksum=True)
            try:
                blob.upload_from_string(
                    b"".join(head),
                    content_type=info.content_type,
                    predefined_acl=self._predefined_acl,
                    retry=self._retry(),
                    timeout=self.timeout,
                )
            except Exception as exc:  # noqa: BLE001 - classified by _raise
                self._raise(exc, "upload", info.file_id)
        else:
            self._write_resumable(content, head)
        self._bucket_confirmed = True

    def _write_resumable(self, content: IncomingContent, head: list[bytes]) -> None:
        from google.api_core.exceptions import GoogleAPICallError

        info = content.info
        temp_name = f"{self.prefix}{UPLOADS_DIR}{info.file_id}.{uuid.uuid4().hex}"
        temp = self._new_blob(temp_name, info, with_checksum=False)
        errors: tuple[type[BaseException], ...] = (GoogleAPICallError, *_transport_errors())
        try:
            # The writer cancels the upload if the block raises, and finalises it otherwise.
            with temp.open(
                "wb",
                chunk_size=self.upload_chunk_size,
                ignore_flush=True,
                content_type=info.content_type,
                retry=self._retry(),
                timeout=self.timeout,
            ) as writer:
                while head:
                    writer.write(head.pop(0))
                for chunk in content.chunks():
                    writer.write(chunk)
        except errors as exc:
            self._raise(exc, "upload", info.file_id)
        try:
            self._rewrite_into_place(temp, info)
        finally:
            self._remove_quietly(temp)

    def _rewrite_into_place(self, temp: Any, info: FileInfo) -> None:
        blob = self._new_blob(self.key(info.file_id), info, with_checksum=True)
        try:
            token, _, _ = blob.rewrite(temp, retry=self._retry(), timeout=self.timeout)
            while token is not None:  # across locations or classes: several calls
                token, _, _ = blob.rewrite(
                    temp, token=token, retry=self._retry(), timeout=self.timeout
                )
            if self._predefined_acl:  # objects.rewrite takes no predefined ACL
                blob.acl.save_predefined(self._predefined_acl)
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "copy the uploaded object into place", info.file_id)

    def _remove_quietly(self, blob: Any) -> None:
        from google.api_core.exceptions import NotFound

        try:
            blob.delete(retry=self._retry(), timeout=self.timeout)
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - logged: the file itself is stored
            log.warning(
                "%s: could not delete the temporary object %s (%s); "
                "remove_incomplete() removes it later",
                self.description,
                blob.name,
                exc,
            )

    def _open(self, file_id: str) -> StoredFile:
        for _ in range(_OPEN_ATTEMPTS):
            blob = self._fetch(file_id)
            if blob is None:
                raise FileNotFound(self.description, file_id)
            info = self._info_from(file_id, blob)
            body = self._media(file_id, blob.generation, 0)
            if body is not None:
                return GCSStoredFile(self, info, int(blob.size or 0), blob.generation, body)
        raise StorageError(
            self.description,
            f"read {file_id!r} failed: the file was replaced {_OPEN_ATTEMPTS} times while it "
            "was being opened; try again",
        )

    def _media(self, file_id: str, generation: int, position: int) -> Body | None:
        """A streamed media GET of ``generation`` from byte ``position``; ``None`` if that
        generation no longer exists (the file was replaced or deleted)."""
        import requests

        url = (
            f"{self.endpoint_url}/download/storage/v1/b/{quote(self.bucket_name, safe='')}"
            f"/o/{quote(self.key(file_id), safe='')}?alt=media&generation={generation}"
        )
        headers = {"Range": f"bytes={position}-"} if position else {}
        self.client  # noqa: B018 - creates the authorised session
        errors: tuple[type[BaseException], ...] = (requests.RequestException, *_transport_errors())
        try:
            response = self._session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except errors as exc:
            self._raise(exc, "read", file_id)
        if response.status_code == 404:
            response.close()
            return None
        returned = response.headers.get("X-Goog-Generation")
        if response.status_code not in (200, 206) or (
            returned is not None and returned != str(generation)
        ):
            detail = f"HTTP {response.status_code}: {response.text[:200]}"
            response.close()
            if returned is not None and returned != str(generation):
                return None
            raise StorageError(self.description, f"read {file_id!r} failed: {detail}")
        return _ResponseBody(response)

    def _delete(self, file_id: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(self.key(file_id)).delete(retry=self._retry(), timeout=self.timeout)
        except NotFound:
            self._confirm_bucket()
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "delete", file_id)

    def _exists(self, file_id: str) -> bool:
        return self._fetch(file_id) is not None

    def info(self, file_or_id: StoredFile | str) -> FileInfo:
        """The metadata of a file, with one metadata request."""
        file_id = self.fileid(file_or_id)
        blob = self._fetch(file_id)
        if blob is None:
            raise FileNotFound(self.description, file_id)
        return self._info_from(file_id, blob)

    def _iter_ids(self) -> Iterator[str]:
        try:
            blobs = self.client.list_blobs(
                self.bucket_name,
                prefix=self.prefix,  # no delimiter: keys such as 'acme/2026/<uuid>.pdf' nest
                page_size=self.list_page_size,
                retry=self._retry(),
                timeout=self.timeout,
            )
            for blob in blobs:
                file_id = blob.name[len(self.prefix) :]
                if self.is_valid_id(file_id):
                    yield file_id
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "list the files")

    # -- maintenance -------------------------------------------------------------------------
    def remove_incomplete(self, older_than: timedelta = timedelta(days=1)) -> list[str]:
        """Delete temporary objects left by interrupted uploads, started more than
        ``older_than`` ago; return their names. (A resumable upload never finalised is no
        object: GCS forgets it after a week.) A lifecycle rule deleting objects under
        ``<prefix>.sa-depot-uploads/`` older than a day does the same."""
        cutoff = datetime.now(timezone.utc) - older_than
        removed: list[str] = []
        try:
            for blob in self.client.list_blobs(
                self.bucket_name,
                prefix=self.prefix + UPLOADS_DIR,
                retry=self._retry(),
                timeout=self.timeout,
            ):
                if blob.time_created is None or blob.time_created < cutoff:
                    blob.delete(retry=self._retry(), timeout=self.timeout)
                    removed.append(blob.name)
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "remove incomplete uploads")
        return removed

    # -- URLs --------------------------------------------------------------------------------
    def public_url(
        self, file_or_id: StoredFile | str, *, response: ResponseOverrides | None = None
    ) -> str | None:
        """A URL serving the file without the middleware, per the ``public_url`` option: a V4
        signed URL (signed locally with the service account's key: no request), or the base
        URL and the object name.

        ``response`` headers travel in a signed URL as ``response-content-type`` and
        ``response-content-disposition`` (GCS XML API, GET Object); an unsigned base URL
        cannot carry them: with ``response`` given it is ``None``."""
        key = self.key(self.fileid(file_or_id))
        if self.public_url_mode is None:
            return None
        if self.public_url_mode != SIGNED:
            if response is not None:
                return None
            return f"{self.public_url_mode.rstrip('/')}/{quote(key)}"
        self.client  # noqa: B018 - resolves default credentials on first use
        credentials = self._credentials
        if not hasattr(credentials, "sign_bytes") or not hasattr(
            credentials, "service_account_email"
        ):
            raise StorageError(
                self.description,
                "public_url='signed' needs service account credentials (a key file or dict), "
                "which hold the key that signs URLs",
            )
        url: str = self.bucket.blob(key).generate_signed_url(
            version="v4",
            expiration=timedelta(seconds=self.signed_url_expires),
            method="GET",
            credentials=credentials,
            api_access_endpoint=self.endpoint_url,
            response_type=response.content_type if response else None,
            response_disposition=response.content_disposition if response else None,
        )
        return url


class _ResponseBody:
    """The raw body of a streamed ``requests`` response."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def read(self, size: int) -> bytes:
        data: bytes = self._response.raw.read(size)
        return data

    def close(self) -> None:
        self._response.close()


class GCSStoredFile(BodyStoredFile):
    """An object being read: the body of the first media GET, then ranged GETs of the same
    generation after a seek."""

    def __init__(
        self, storage: GCSStorage, info: FileInfo, length: int, generation: int, body: Body
    ) -> None:
        self.read_errors = _transport_errors()
        super().__init__(info, length, storage.description, body, storage.chunk_size)
        self._storage = storage
        self._generation = generation

    @property
    def public_url(self) -> str | None:
        return self._storage.public_url(self.file_id)

    def _open_body(self, position: int) -> Body:
        body = self._storage._media(self.file_id, self._generation, position)
        if body is None:
            raise StorageError(
                self._storage.description,
                f"reading file {self.file_id!r} failed at byte {position}: the file was "
                "replaced or deleted while it was being read; open it again",
            )
        return body


def _emulator_host() -> str | None:
    """``STORAGE_EMULATOR_HOST``, which google-cloud-storage also honours."""
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if not host:
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def _load_credentials(credentials: Mapping[str, Any] | str | Any | None) -> Any:
    """Service account credentials from filedepot's forms: a dict, a key file path (or its
    JSON text), an object used as is; ``None`` reads ``GOOGLE_APPLICATION_CREDENTIALS`` if set
    (as filedepot did), else leaves the lookup to the first use."""
    if credentials is None or credentials == "":
        path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not path:
            return None
        credentials = path
    if not isinstance(credentials, (str, Mapping)):
        return credentials
    from google.oauth2 import service_account

    try:
        if isinstance(credentials, str) and credentials.lstrip().startswith("{"):
            credentials = json.loads(credentials)
        if isinstance(credentials, Mapping):
            return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                dict(credentials)
            )
        return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            credentials
        )
    except (OSError, ValueError, KeyError) as exc:
        shown = credentials if isinstance(credentials, str) else "the credentials dict"
        raise ConfigurationError(
            f"GCSStorage: cannot load service account credentials from {shown}: {exc}"
        ) from exc


def _transport_errors() -> tuple[type[BaseException], ...]:
    import requests
    from google.auth.exceptions import TransportError
    from urllib3.exceptions import HTTPError

    return (requests.RequestException, HTTPError, TransportError)


_STATUS_HINTS = {
    401: "the credentials were refused: check them (a revoked or wrong service account key?)",
    403: (
        "access denied: the credentials need storage.objects.get, create, delete and list on "
        "the bucket (the Storage Object Admin role)"
    ),
    412: "a precondition failed: the object changed meanwhile; try again",
    429: "the server asks to slow down (rate limit): retry later",
}


def _explain(exc: BaseException, action: str, file_id: str | None) -> str:
    """A message naming what was attempted and why it failed, with what to do."""
    import requests
    from google.api_core.exceptions import GoogleAPICallError, RetryError
    from google.auth.exceptions import GoogleAuthError, RefreshError

    what = f"{action} {file_id!r}" if file_id else action
    if isinstance(exc, RetryError) and exc.cause is not None:
        return _explain(exc.cause, action, file_id) + " (retried until retry_timeout)"
    if isinstance(exc, GoogleAPICallError):
        code = exc.code
        hint = _STATUS_HINTS.get(int(code)) if code is not None else None
        if code == 404 and action in ("upload", "list the files"):
            hint = "the bucket does not exist: create it, or pass create_bucket=True"
        detail = f"HTTP {code}: {exc.message}"
        return f"{what} failed: {hint} ({detail})" if hint else f"{what} failed: {detail}"
    if isinstance(exc, RefreshError):
        return f"{what} failed: the credentials could not get an access token ({exc})"
    if isinstance(exc, (requests.ConnectionError, GoogleAuthError, ConnectionError)):
        return f"{what} failed: cannot connect to the server, is it running? ({exc})"
    if isinstance(exc, requests.Timeout):
        return f"{what} failed: the server did not answer in time ({exc})"
    return f"{what} failed: {type(exc).__name__}: {exc}"
