"""OpenStack Swift, through the official client library (``python-swiftclient``).

Each file is one object, ``<prefix><file_id>``, in a container. The object's content type is
the file's; its metadata (``X-Object-Meta-*``) holds ``Depot-Filename`` (percent-encoded
UTF-8), ``Depot-Modified``, ``Depot-Sha256`` and ``Depot-Extra``.

Requests per operation:

* ``get``: one GET, whose response carries the metadata and a body read as you read; a seek
  issues a ranged GET made conditional (``If-Match``) on the first response's ETag, so a file
  replaced meanwhile raises a :class:`~sa_depot.exceptions.StorageError` instead of mixing two
  versions.
* ``info``, ``exists``: one HEAD. ``delete``: a HEAD, then a DELETE (with
  ``multipart-manifest=delete`` for a large file, which removes its segments too; Swift refuses
  that parameter for a plain object).
* ``create``/``replace`` up to ``upload_threshold`` bytes: one PUT with the metadata, checksum
  included.
* larger content is a Static Large Object: it streams, with chunked transfer encoding and
  nothing held in memory but the chunk in flight, into segments of ``segment_size`` bytes under
  ``<prefix>.sa-depot-segments/<file_id>/<upload>/``, then a manifest listing them is PUT at the
  file's name with the metadata, checksum included. The manifest makes the file appear complete
  or not at all; a failed upload deletes its segments. A replace deletes the previous version's
  segments once the new manifest is in place (a reader still streaming the old version then
  fails with a :class:`~sa_depot.exceptions.StorageError`). Segments left by a crash are
  removed by :meth:`SwiftStorage.remove_incomplete`. The cluster must have the ``slo``
  middleware (it is in Swift's default pipeline).

Authentication: tempauth or Swift's v1 auth (``auth_url``, ``user``, ``key``), Keystone v3
(``auth_version='3'`` with ``project_name``, ``user_domain_name``... : python-keystoneclient
must be installed), or a token with its storage URL. The constructor makes no network call;
each thread gets its own connection (swiftclient's are not thread-safe), which authenticates
on its first request.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any, NoReturn
from urllib.parse import quote, urlencode, urlsplit

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
    Body,
    BodyStoredFile,
    MetadataKeys,
    decode_metadata,
    encode_metadata,
    read_head,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
META_PREFIX = "X-Object-Meta-"
#: Metadata names, without ``X-Object-Meta-`` (Swift gives them back lowercased).
SWIFT_KEYS = MetadataKeys("Depot-Filename", "Depot-Modified", "Depot-Sha256", "Depot-Extra")
#: The segment group of a large file's current version, so that a replace and
#: remove_incomplete know which segments belong to it.
META_SEGMENTS = "Depot-Segments"
#: Where the segments of large files live, under the storage's prefix.
SEGMENTS_DIR = ".sa-depot-segments/"
#: Swift's defaults: 5 GiB per object, 1,000 segments per manifest.
MAX_SEGMENT_SIZE = 5 * GiB
MAX_SEGMENTS = 1000
SIGNED = "signed"
_AUTH_VERSIONS = ("1", "1.0", "2", "2.0", "3")


class SwiftStorage(FileStorage):
    """Files stored as objects of an OpenStack Swift container.

    :param container: the container name (it must exist, unless ``create_container`` is true).
    :param auth_url: the authentication URL (tempauth: ``'https://swift.example.com/auth/v1.0'``;
        Keystone: ``'https://keystone.example.com/v3'``).
    :param user: the user name (tempauth: ``'account:user'``).
    :param key: the key or password.
    :param auth_version: ``'1'`` (tempauth, swauth, v1 auth), ``'3'`` (Keystone v3) or ``'2'``.
    :param project_name: Keystone: the project (tenant) to scope to; or ``project_id``.
    :param user_domain_name: Keystone v3: the user's domain (or ``user_domain_id``).
    :param project_domain_name: Keystone v3: the project's domain (or ``project_domain_id``).
    :param region_name: Keystone: the region whose object-store endpoint to use.
    :param storage_url: the account's storage URL (``'https://swift.example.com/v1/AUTH_acct'``):
        with ``token``, no authentication at all; alone, it overrides the catalog's endpoint and
        lets :meth:`public_url` sign without authenticating first.
    :param token: an authentication token (with ``storage_url``).
    :param prefix: prepended to every file id to make the object name (``'media/'``).
    :param create_container: create the container on first use if it does not exist.
    :param public_url: what :meth:`public_url` gives: ``None`` (serve through the middleware),
        ``'signed'`` (a TempURL valid ``temp_url_expires`` seconds, signed locally with
        ``temp_url_key``, the account's or the container's ``Temp-URL-Key``) or a base URL to
        which the object name is appended (for a container readable by anyone).
    :param temp_url_key: the secret TempURL key.
    :param temp_url_expires: lifetime of TempURLs, in seconds.
    :param temp_url_digest: ``'sha256'`` (the default), ``'sha512'`` or ``'sha1'``: what the
        cluster's tempurl middleware allows.
    :param upload_threshold: content larger than this is stored as a Static Large Object.
    :param segment_size: bytes per segment of a large file (Swift allows 1,000 segments by
        default: 64 MiB segments make files of up to 62 GiB). Segments stream: memory does not
        grow with them.
    :param chunk_size: bytes read from the content, and from a response, at a time.
    :param timeout: seconds to wait for the server to connect or answer.
    :param max_attempts: attempts per request, the first included (swiftclient's backoff).
    :param insecure: do not verify the server's TLS certificate.
    :param cacert: a CA bundle to verify it with.
    """

    def __init__(
        self,
        container: str,
        *,
        auth_url: str | None = None,
        user: str | None = None,
        key: str | None = None,
        auth_version: str = "1",
        project_name: str | None = None,
        project_id: str | None = None,
        user_domain_name: str | None = None,
        user_domain_id: str | None = None,
        project_domain_name: str | None = None,
        project_domain_id: str | None = None,
        region_name: str | None = None,
        storage_url: str | None = None,
        token: str | None = None,
        prefix: str = "",
        create_container: bool = False,
        public_url: str | None = None,
        temp_url_key: str | None = None,
        temp_url_expires: int = 3600,
        temp_url_digest: str = "sha256",
        upload_threshold: int = 8 * MiB,
        segment_size: int = 64 * MiB,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = 60.0,
        max_attempts: int = 3,
        insecure: bool = False,
        cacert: str | None = None,
    ) -> None:
        if importlib.util.find_spec("swiftclient") is None:
            raise ConfigurationError(
                "SwiftStorage needs python-swiftclient, which is not installed: "
                "pip install 'sa-depot[swift]'"
            )
        if not isinstance(container, str) or not container or "/" in container:
            raise ConfigurationError(
                f"SwiftStorage: container {container!r} is not a valid container name (no '/')"
            )
        if token is not None and storage_url is None:
            raise ConfigurationError("SwiftStorage: a token needs its storage_url")
        if token is None and not (auth_url and user and key):
            raise ConfigurationError(
                "SwiftStorage: give auth_url, user and key (or a token and its storage_url)"
            )
        if str(auth_version) not in _AUTH_VERSIONS:
            raise ConfigurationError(
                f"SwiftStorage: auth_version {auth_version!r} must be '1', '2' or '3'"
            )
        if str(auth_version).startswith(("2", "3")) and not (project_name or project_id):
            raise ConfigurationError(
                "SwiftStorage: Keystone authentication (auth_version 2 or 3) needs project_name "
                "or project_id"
            )
        if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
            raise ConfigurationError(
                f"SwiftStorage: segment_size must be between 1 byte and 5 GiB; got {segment_size}"
            )
        if upload_threshold < 0 or chunk_size < 1:
            raise ConfigurationError(
                "SwiftStorage: upload_threshold cannot be negative, chunk_size must be positive"
            )
        if public_url == SIGNED and not temp_url_key:
            raise ConfigurationError(
                "SwiftStorage: public_url='signed' needs temp_url_key, the account's or the "
                "container's Temp-URL-Key"
            )
        if (
            public_url is not None
            and public_url != SIGNED
            and not public_url.startswith(("https://", "http://"))
        ):
            raise ConfigurationError(
                f"SwiftStorage: public_url {public_url!r} must be None, 'signed' or a base URL "
                "starting with https://"
            )
        if temp_url_digest not in ("sha1", "sha256", "sha512"):
            raise ConfigurationError(
                f"SwiftStorage: temp_url_digest {temp_url_digest!r} must be sha1, sha256 or sha512"
            )
        self.container = container
        self.prefix = prefix
        self.auth_url = auth_url
        self.user = user
        self.auth_version = str(auth_version)
        self.storage_url = storage_url
        self.create_container = create_container
        self.public_url_mode = public_url
        self.temp_url_expires = temp_url_expires
        self.temp_url_digest = temp_url_digest
        self.upload_threshold = upload_threshold
        self.segment_size = segment_size
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self._key = key
        self._token = token
        self._temp_url_key = temp_url_key
        self._insecure = insecure
        self._cacert = cacert
        self._os_options = {
            name: value
            for name, value in {
                "project_name": project_name,
                "tenant_name": project_name,
                "project_id": project_id,
                "tenant_id": project_id,
                "user_domain_name": user_domain_name,
                "user_domain_id": user_domain_id,
                "project_domain_name": project_domain_name,
                "project_domain_id": project_domain_id,
                "region_name": region_name,
                "object_storage_url": storage_url,
            }.items()
            if value
        }
        self._local = threading.local()
        self._lock = threading.Lock()
        self._container_ready = False

    # -- connections -------------------------------------------------------------------------
    @property
    def connection(self) -> Any:
        """This thread's ``swiftclient.Connection`` (they are not thread-safe), authenticated
        on first use (so that refused credentials are reported as such)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._make_connection()
            if not connection.url or not connection.token:
                try:
                    connection.url, connection.token = connection.get_auth()
                except Exception as exc:  # noqa: BLE001 - classified by _raise
                    self._raise(exc, "authenticate")
            self._local.connection = connection
        if not self._container_ready and self.create_container:
            with self._lock:
                if not self._container_ready:
                    self._ensure_container(connection)
        return connection

    def _make_connection(self) -> Any:
        import swiftclient

        return swiftclient.Connection(
            authurl=self.auth_url,
            user=self.user,
            key=self._key,
            auth_version=self.auth_version,
            os_options=dict(self._os_options),
            preauthurl=self.storage_url if self._token else None,
            preauthtoken=self._token,
            retries=self.max_attempts - 1,
            starting_backoff=0.5,
            max_backoff=8,
            timeout=self.timeout,
            insecure=self._insecure,
            cacert=self._cacert,
        )

    def _ensure_container(self, connection: Any) -> None:
        try:
            connection.put_container(self.container)  # idempotent: 201, or 202 if it exists
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "create the container")
        self._container_ready = True

    def _storage_url(self) -> str:
        """The account's storage URL: given, or learnt by authenticating (once per thread)."""
        if self.storage_url:
            return self.storage_url
        url: str = self.connection.url
        return url

    # -- helpers -----------------------------------------------------------------------------
    @property
    def description(self) -> str:
        where = self.storage_url or self.auth_url
        return f"{super().description} (Swift container {self.container!r} at {where})"

    def key(self, file_id: str) -> str:
        """The object name of ``file_id``."""
        return self.prefix + file_id

    def _raise(self, exc: BaseException, action: str, file_id: str | None = None) -> NoReturn:
        raise StorageError(self.description, _explain(exc, action, file_id)) from exc

    def _call(self, action: str, file_id: str | None, method: str, *args: Any, **kw: Any) -> Any:
        """A connection method, with swiftclient's and requests' exceptions turned into
        StorageError (a 404 included: callers that expect one catch it first)."""
        try:
            return getattr(self.connection, method)(*args, **kw)
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, action, file_id)

    def _info_from(self, file_id: str, headers: dict[str, str]) -> FileInfo:
        metadata = {}
        for name, value in headers.items():
            if name.lower().startswith(META_PREFIX.lower()):
                metadata[name[len(META_PREFIX) :]] = value
        # swiftclient percent-decodes every header it receives: encode the encoded fields
        # again, so that decoding them once gives what was stored.
        for name in (SWIFT_KEYS.filename.lower(), SWIFT_KEYS.extra.lower()):
            if name in metadata:
                metadata[name] = quote(metadata[name], safe="")
        length = headers.get("content-length")
        return decode_metadata(
            file_id,
            metadata,
            content_type=headers.get("content-type"),
            content_length=int(length) if length is not None else None,
            stored_at=_http_date(headers.get("last-modified")),
            keys=SWIFT_KEYS,
        )

    def _headers(self, info: FileInfo, segments: str | None = None) -> dict[str, str]:
        headers = {
            META_PREFIX + name: value for name, value in encode_metadata(info, SWIFT_KEYS).items()
        }
        if segments is not None:
            headers[META_PREFIX + META_SEGMENTS] = segments
        return headers

    def _is_not_found(self, exc: BaseException) -> bool:
        return getattr(exc, "http_status", None) == 404

    def _confirm_container(self) -> None:
        """After a 404, tell a missing container apart from a missing object (once)."""
        if self._container_ready:
            return
        try:
            self.connection.head_container(self.container)
        except Exception as exc:
            if self._is_not_found(exc):
                raise StorageError(
                    self.description,
                    "the container does not exist: create it, or pass create_container=True",
                ) from exc
            self._raise(exc, "check the container")
        self._container_ready = True

    def _head(self, file_id: str) -> dict[str, str] | None:
        try:
            headers: dict[str, str] = self.connection.head_object(self.container, self.key(file_id))
        except Exception as exc:  # noqa: BLE001 - classified below
            if self._is_not_found(exc):
                self._confirm_container()
                return None
            self._raise(exc, "look up", file_id)
        self._container_ready = True
        return headers

    # -- the primitives ----------------------------------------------------------------------
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        head = read_head(content, self.upload_threshold)
        info = content.info
        old_segments = None
        if replace:
            old = self._head(info.file_id)
            old_segments = old.get((META_PREFIX + META_SEGMENTS).lower()) if old else None
        if content.finished:
            data = b"".join(head)
            try:
                self.connection.put_object(
                    self.container,
                    self.key(info.file_id),
                    io.BytesIO(data),  # seekable: swiftclient can retry it
                    content_length=len(data),
                    content_type=info.content_type,
                    headers=self._headers(info),
                )
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                if self._is_not_found(exc):  # PUT answers 404 when the container is missing
                    self._confirm_container()
                self._raise(exc, "upload", info.file_id)
        else:
            self._write_large(content, head)
        self._container_ready = True
        if old_segments:
            self._remove_segments(info.file_id, old_segments)

    def _write_large(self, content: IncomingContent, head: list[bytes]) -> None:
        info = content.info
        upload = uuid.uuid4().hex
        group = f"{self.prefix}{SEGMENTS_DIR}{info.file_id}/{upload}/"
        manifest: list[dict[str, Any]] = []
        try:
            while True:
                segment = _Segment(content, head, self.segment_size)
                if not segment.has_data():
                    break
                if len(manifest) >= MAX_SEGMENTS:
                    raise StorageError(
                        self.description,
                        f"file {info.file_id!r} needs more than {MAX_SEGMENTS} segments of "
                        f"{self.segment_size} bytes: raise segment_size",
                    )
                name = f"{group}{len(manifest):06d}"
                etag = self._put_streamed(
                    f"upload segment {len(manifest) + 1}", info, name, segment
                )
                manifest.append(
                    {"path": f"/{self.container}/{name}", "etag": etag, "size_bytes": segment.sent}
                )
            self._call(
                "upload the manifest",
                info.file_id,
                "put_object",
                self.container,
                self.key(info.file_id),
                json.dumps(manifest),
                content_type=info.content_type,
                headers=self._headers(info, segments=upload),
                query_string="multipart-manifest=put",
            )
        except BaseException:
            self._remove_segments(info.file_id, upload)
            raise

    def _put_streamed(self, action: str, info: FileInfo, name: str, segment: _Segment) -> str:
        """PUT a segment, streamed: without swiftclient's retries, which cannot resend a
        stream and would report that instead of the failure itself."""
        connection = self.connection
        retries, connection.retries = connection.retries, 0
        try:
            etag: str = self._call(
                action,
                info.file_id,
                "put_object",
                self.container,
                name,
                segment,
                content_type="application/octet-stream",
            )
        finally:
            connection.retries = retries
        return etag

    def _remove_segments(self, file_id: str, upload: str) -> None:
        """Delete the segments of one upload of ``file_id``."""
        group = f"{self.prefix}{SEGMENTS_DIR}{file_id}/{upload}/"
        try:
            for name in self._names(group, delimiter=None):
                try:
                    self.connection.delete_object(self.container, name)
                except Exception as exc:
                    if not self._is_not_found(exc):
                        raise
        except Exception as exc:  # noqa: BLE001 - logged: the file itself is fine
            log.warning(
                "%s: could not delete the segments %s (%s); remove_incomplete() removes them",
                self.description,
                group,
                exc,
            )

    def _names(self, prefix: str, delimiter: str | None = "/") -> Iterator[str]:
        """The object names under ``prefix``, page by page."""
        marker = ""
        while True:
            _, page = self.connection.get_container(
                self.container, prefix=prefix, delimiter=delimiter, marker=marker, limit=1000
            )
            if not page:
                return
            for item in page:
                if "name" in item:
                    yield item["name"]
            marker = page[-1].get("name") or page[-1].get("subdir")

    def _open(self, file_id: str) -> StoredFile:
        headers, body = self._get(file_id, {})
        return SwiftStoredFile(self, self._info_from(file_id, headers), headers, body)

    def _get(self, file_id: str, headers: dict[str, str]) -> tuple[dict[str, str], Any]:
        # An object server answers 404 when an overwrite removes the version a GET was about
        # to open (it lists the object's directory, then opens the newest file). A cluster's
        # proxy hides this by asking another replica; with one replica, asking again does.
        for attempt in (1, 2):
            try:
                found: tuple[dict[str, str], Any] = self.connection.get_object(
                    self.container,
                    self.key(file_id),
                    resp_chunk_size=self.chunk_size,
                    headers=headers,
                )
            except Exception as exc:  # noqa: BLE001 - classified below
                if attempt == 1 and self._is_not_found(exc):
                    continue
                self._read_failed(exc, file_id)
            self._container_ready = True
            return found
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _read_failed(self, exc: BaseException, file_id: str) -> NoReturn:
        """Raise the error a failed GET of ``file_id`` means."""
        if self._is_not_found(exc):
            self._confirm_container()
            raise FileNotFound(self.description, file_id) from exc
        if getattr(exc, "http_status", None) == 412:
            raise StorageError(
                self.description,
                f"reading file {file_id!r} failed: the file was replaced while it was being "
                "read; open it again",
            ) from exc
        self._raise(exc, "read", file_id)

    def _delete(self, file_id: str) -> None:
        # Swift's multipart-manifest=delete removes a manifest and its segments, but refuses
        # (inside a 200 response) to delete a plain object: ask which one this is first.
        headers = self._head(file_id)
        if headers is None:
            return
        large = headers.get("x-static-large-object", "").lower() == "true"
        try:
            self.connection.delete_object(
                self.container,
                self.key(file_id),
                query_string="multipart-manifest=delete" if large else None,
            )
        except Exception as exc:  # noqa: BLE001 - classified below
            if not self._is_not_found(exc):
                self._raise(exc, "delete", file_id)

    def _exists(self, file_id: str) -> bool:
        return self._head(file_id) is not None

    def info(self, file_or_id: StoredFile | str) -> FileInfo:
        """The metadata of a file, with one HEAD request."""
        file_id = self.fileid(file_or_id)
        headers = self._head(file_id)
        if headers is None:
            raise FileNotFound(self.description, file_id)
        return self._info_from(file_id, headers)

    def _iter_ids(self) -> Iterator[str]:
        try:
            # every name, not one level: keys such as 'acme/2026/<uuid>.pdf' nest
            for name in self._names(self.prefix, delimiter=None):
                file_id = name[len(self.prefix) :]
                if self.is_valid_id(file_id):
                    yield file_id
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            if self._is_not_found(exc):
                self._confirm_container()
            self._raise(exc, "list the files")

    # -- maintenance -------------------------------------------------------------------------
    def remove_incomplete(self, older_than: timedelta = timedelta(days=1)) -> list[str]:
        """Delete segments that no file's manifest uses (left by an interrupted upload or
        replace) and that were written more than ``older_than`` ago; return their names."""
        cutoff = datetime.now(timezone.utc) - older_than
        base = self.prefix + SEGMENTS_DIR
        removed: list[str] = []
        current: dict[str, str | None] = {}
        try:
            marker = ""
            while True:
                _, page = self.connection.get_container(
                    self.container, prefix=base, marker=marker, limit=1000
                )
                if not page:
                    break
                marker = page[-1]["name"]
                for item in page:
                    # <file id>/<upload>/<n>: the id may hold '/' (a key), the rest never does
                    file_id, _, upload = (
                        item["name"][len(base) :].rpartition("/")[0].rpartition("/")
                    )
                    written = datetime.fromisoformat(item["last_modified"]).replace(
                        tzinfo=timezone.utc
                    )
                    if written >= cutoff:
                        continue
                    if file_id not in current:
                        headers = self._head(file_id) if self.is_valid_id(file_id) else None
                        current[file_id] = (
                            headers.get((META_PREFIX + META_SEGMENTS).lower()) if headers else None
                        )
                    if current[file_id] != upload:
                        self.connection.delete_object(self.container, item["name"])
                        removed.append(item["name"])
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by _raise
            self._raise(exc, "remove incomplete uploads")
        return removed

    # -- URLs --------------------------------------------------------------------------------
    def public_url(
        self, file_or_id: StoredFile | str, *, response: ResponseOverrides | None = None
    ) -> str | None:
        """A URL serving the file without the middleware, per the ``public_url`` option: a
        TempURL (signed locally with ``temp_url_key``; the storage URL is learnt by
        authenticating once per thread unless ``storage_url`` is given) or the base URL and the
        object name.

        ``response.content_disposition`` travels as TempURL's ``filename`` and ``inline``
        parameters (Swift docs, TempURL middleware). A TempURL cannot change the Content-Type:
        a requested one that differs from the stored file's (known only from a
        :class:`StoredFile`, as no request is made) gives ``None``, and the download is proxied.
        """
        file_id = self.fileid(file_or_id)
        key = self.key(file_id)
        if self.public_url_mode is None:
            return None
        if self.public_url_mode != SIGNED:
            if response is not None:
                return None
            return f"{self.public_url_mode.rstrip('/')}/{quote(key)}"
        params: dict[str, str] = {}
        if response is not None:
            if response.content_type and not (
                isinstance(file_or_id, StoredFile)
                and _media_type(response.content_type) == _media_type(file_or_id.content_type)
            ):
                return None
            if response.content_disposition:
                disposition = _disposition(response.content_disposition)
                if disposition is None:
                    return None
                params.update(disposition)
        from swiftclient.utils import generate_temp_url

        parts = urlsplit(self._storage_url())
        path = f"{parts.path.rstrip('/')}/{self.container}/{key}"
        assert self._temp_url_key is not None  # checked by the constructor
        # The signature covers the raw path; the URL carries it percent-encoded.
        signed = generate_temp_url(
            path, self.temp_url_expires, self._temp_url_key, "GET", digest=self.temp_url_digest
        )
        query = signed.partition("?")[2]
        extra = urlencode(params).replace("inline=", "inline") if params else ""
        return f"{parts.scheme}://{parts.netloc}{quote(path)}?{query}" + (
            f"&{extra}" if extra else ""
        )


class _Segment:
    """Up to ``size`` bytes of the content (after ``head``, which it consumes), as the
    iterable swiftclient streams in a chunked PUT; counts what it sent."""

    def __init__(self, content: IncomingContent, head: list[bytes], size: int) -> None:
        self._content = content
        self._head = head
        self._remaining = size
        self._first: bytes | None = None
        self.sent = 0

    def _next(self) -> bytes:
        if self._head:
            chunk = self._head.pop(0)
            if len(chunk) > self._remaining:  # keep what belongs to the next segment
                self._head.insert(0, chunk[self._remaining :])
                chunk = chunk[: self._remaining]
            return chunk
        return self._content.read(min(self._content.chunk_size, self._remaining))

    def has_data(self) -> bool:
        """Whether there is anything left to send (reads the first chunk ahead)."""
        if self._first is None:
            self._first = self._next() if self._remaining else b""
        return bool(self._first)

    def __iter__(self) -> Iterator[bytes]:
        if self.has_data():
            assert self._first is not None
            chunk, self._first = self._first, b""
            while chunk:
                self._remaining -= len(chunk)
                self.sent += len(chunk)
                yield chunk
                chunk = self._next() if self._remaining else b""


class SwiftStoredFile(BodyStoredFile):
    """An object being read: the body of the first GET, then ranged GETs ``If-Match`` its ETag
    after a seek."""

    def __init__(
        self, storage: SwiftStorage, info: FileInfo, headers: dict[str, str], body: Any
    ) -> None:
        import requests
        from urllib3.exceptions import HTTPError

        self.read_errors = (requests.RequestException, HTTPError)
        length = int(headers.get("content-length") or 0)
        super().__init__(info, length, storage.description, body, storage.chunk_size)
        self._storage = storage
        self._etag = headers.get("etag")

    @property
    def public_url(self) -> str | None:
        return self._storage.public_url(self)

    def _open_body(self, position: int) -> Body:
        headers = {"Range": f"bytes={position}-"}
        if self._etag:
            headers["If-Match"] = self._etag
        _, body = self._storage._get(self.file_id, headers)
        return body  # type: ignore[no-any-return]


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _disposition(value: str) -> dict[str, str] | None:
    """TempURL parameters for a Content-Disposition value (RFC 6266): ``filename`` makes
    Swift send ``attachment; filename=...``, ``inline`` (with or without a filename) an inline
    disposition. ``None`` for a value they cannot express."""
    message = Message()
    message["Content-Disposition"] = value
    kind = message.get_content_disposition()
    filename = None
    params: list[tuple[str, Any]] = message.get_params(header="content-disposition", failobj=[])
    for name, param in params[1:]:
        if name == "filename" and (filename is None or isinstance(param, tuple)):
            filename = collapse_rfc2231_value(param)  # filename* (RFC 5987) wins
    if kind == "attachment" and filename:
        return {"filename": filename}
    if kind == "inline":
        return {"inline": "", **({"filename": filename} if filename else {})}
    return None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


_STATUS_HINTS = {
    401: "authentication failed: check user and key (or the token, which may have expired)",
    403: "access denied: check that the user may read and write the container",
    413: "the object is too large for the cluster: lower segment_size",
    429: "the server asks to slow down (rate limit): retry later",
    507: "the cluster is out of space",
}


def _explain(exc: BaseException, action: str, file_id: str | None) -> str:
    """A message naming what was attempted and why it failed, with what to do."""
    import requests
    from swiftclient import ClientException

    what = f"{action} {file_id!r}" if file_id else action
    if isinstance(exc, ClientException):
        status = exc.http_status
        if status is None and "no ability to reset" in str(exc.msg):
            return (
                f"{what} failed: the request failed (an expired token or a server error) and "
                f"streamed content cannot be sent again; try again ({exc.msg})"
            )
        if status is None:
            return f"{what} failed: {exc.msg}"
        hint = _STATUS_HINTS.get(status)
        detail = f"HTTP {status} {exc.http_reason or ''}".rstrip()
        return f"{what} failed: {hint} ({detail})" if hint else f"{what} failed: {detail}"
    if isinstance(exc, (requests.ConnectionError, ConnectionError)):
        return f"{what} failed: cannot connect to the server, is it running? ({exc})"
    if isinstance(exc, requests.Timeout):
        return f"{what} failed: the server did not answer in time ({exc})"
    return f"{what} failed: {type(exc).__name__}: {exc}"
