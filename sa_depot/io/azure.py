"""Azure Blob Storage, through the official client library (``azure-storage-blob``).

Each file is one block blob, ``<prefix><file_id>``, in a container. The blob's content type is
the file's; its metadata holds ``depot_filename`` (percent-encoded UTF-8: Azure metadata must
be ASCII, and its names C# identifiers, hence no ``x-depot-`` names), ``depot_modified``,
``depot_sha256`` and ``depot_extra``.

Requests per operation:

* ``get``: one GET, whose response carries the properties, the metadata and the first chunk;
  further chunks are ranged GETs made conditional on the ETag of the first response (the
  library does it), and so is the GET after a seek: a file replaced meanwhile raises a
  :class:`~sa_depot.exceptions.StorageError` instead of mixing two versions.
* ``info``, ``exists``: one HEAD. ``delete``: one DELETE.
* ``create``/``replace`` up to ``upload_threshold`` bytes: one Put Blob with the metadata,
  checksum included.
* larger content is staged block by block (Put Block, ``block_size`` bytes each, one in memory
  at a time), then committed with its metadata, checksum included, in one Put Block List.
  Staged blocks are invisible: the blob appears complete or not at all, a replaced blob keeps
  its previous version until the commit, and Azure discards blocks never committed (after a
  week) by itself, so there is nothing for a ``remove_incomplete`` to do.

The constructor makes no network call.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn
from urllib.parse import quote

from sa_depot.exceptions import ConfigurationError, FileNotFound, StorageError
from sa_depot.io.interfaces import (
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
    iter_parts,
    read_head,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Metadata names: C# identifiers, as Azure requires.
AZURE_KEYS = MetadataKeys("depot_filename", "depot_modified", "depot_sha256", "depot_extra")
#: Azure's limits: 4,000 MiB per block, 50,000 blocks per blob.
MAX_BLOCK_SIZE = 4000 * MiB
MAX_BLOCKS = 50_000
SIGNED = "signed"
#: A SAS starts this long before it is made, so that a clock slightly ahead of the
#: server's does not make it "not yet valid".
SAS_CLOCK_SKEW = timedelta(minutes=5)


class AzureBlobStorage(FileStorage):
    """Files stored as block blobs of an Azure Blob Storage container.

    Give either ``connection_string`` (what the Azure portal shows, or Azurite's) or
    ``account_url`` with a ``credential``.

    :param container: the container name (it must exist, unless ``create_container`` is true).
    :param connection_string: ``'DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...'``.
    :param account_url: ``'https://<account>.blob.core.windows.net'``.
    :param credential: with ``account_url``: the account key (a string), a SAS token (a string
        starting with ``?`` or containing ``sig=``), ``{'account_name': ..., 'account_key':
        ...}``, or an ``azure.identity`` credential object (``DefaultAzureCredential()``...).
        ``None``: anonymous (a public container, read only).
    :param prefix: prepended to every file id to make the blob name (``'media/'``).
    :param create_container: create the container on first use if it does not exist.
    :param public_url: what :meth:`public_url` gives: ``None`` (serve through the
        middleware), ``'signed'`` (a read-only service SAS valid ``sas_expires`` seconds, signed
        locally with the account key, which the credentials must hold) or a base URL to which
        the blob name is appended (for a container with public read access).
    :param sas_expires: lifetime of SAS URLs, in seconds.
    :param upload_threshold: content larger than this is staged in blocks.
    :param block_size: bytes per staged block; an upload holds about
        ``max(upload_threshold, block_size)`` in memory.
    :param chunk_size: bytes read from the content, and downloaded per request, at a time.
    :param connect_timeout: seconds to connect.
    :param read_timeout: seconds to wait for a response.
    :param max_attempts: attempts per request, the first included (exponential backoff from
        one second between them).
    """

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: str | Mapping[str, str] | Any | None = None,
        prefix: str = "",
        create_container: bool = False,
        public_url: str | None = None,
        sas_expires: int = 3600,
        upload_threshold: int = 8 * MiB,
        block_size: int = 8 * MiB,
        chunk_size: int = 4 * MiB,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if importlib.util.find_spec("azure.storage.blob") is None:
            raise ConfigurationError(
                "AzureBlobStorage needs azure-storage-blob, which is not installed: "
                "pip install 'sa-depot[azure]'"
            )
        if not isinstance(container, str) or not 3 <= len(container) <= 63:
            raise ConfigurationError(
                f"AzureBlobStorage: container {container!r} is not a valid container name (3 to "
                "63 lowercase letters, digits and hyphens)"
            )
        if (connection_string is None) == (account_url is None):
            raise ConfigurationError(
                "AzureBlobStorage: give connection_string, or account_url (with a credential), "
                "but not both"
            )
        if connection_string is not None and credential is not None:
            raise ConfigurationError(
                "AzureBlobStorage: a connection string carries its own credential; leave "
                "credential out"
            )
        if not 0 < block_size <= MAX_BLOCK_SIZE:
            raise ConfigurationError(
                f"AzureBlobStorage: block_size must be between 1 byte and 4000 MiB; got "
                f"{block_size}"
            )
        if upload_threshold < 0:
            raise ConfigurationError("AzureBlobStorage: upload_threshold cannot be negative")
        if chunk_size < 1:
            raise ConfigurationError(
                f"AzureBlobStorage: chunk_size must be a positive number of bytes, not {chunk_size}"
            )
        if sas_expires <= 0:
            raise ConfigurationError("AzureBlobStorage: sas_expires must be positive")
        settings = _parse_connection_string(connection_string) if connection_string else {}
        self.account_name: str | None = settings.get("accountname")
        self._account_key: str | None = settings.get("accountkey")
        if isinstance(credential, Mapping):
            self.account_name = credential.get("account_name") or self.account_name
            self._account_key = credential.get("account_key")
        elif isinstance(credential, str) and not _is_sas(credential):
            self._account_key = credential
        if account_url is not None and self.account_name is None:
            self.account_name = _account_from_url(account_url)
        if (
            public_url is not None
            and public_url != SIGNED
            and not public_url.startswith(("https://", "http://"))
        ):
            raise ConfigurationError(
                f"AzureBlobStorage: public_url {public_url!r} must be None, 'signed' or a "
                "base URL starting with https://"
            )
        if public_url == SIGNED and not (self._account_key and self.account_name):
            raise ConfigurationError(
                "AzureBlobStorage: public_url='signed' signs SAS URLs with the account key; "
                "give a connection string with AccountKey, or the account key as credential"
            )
        self.container = container
        self.prefix = prefix
        self.account_url = (
            account_url
            or settings.get("blobendpoint")
            or (f"https://{self.account_name}.blob.core.windows.net" if self.account_name else None)
        )
        self.create_container = create_container
        self.public_url_mode = public_url
        self.sas_expires = sas_expires
        self.upload_threshold = upload_threshold
        self.block_size = block_size
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self._connection_string = connection_string
        self._credential = credential
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._container_confirmed = False

    # -- the client --------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``ContainerClient`` of the container, created on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        from azure.storage.blob import BlobServiceClient, ExponentialRetry

        options: dict[str, Any] = {
            "retry_policy": ExponentialRetry(
                initial_backoff=1,
                increment_base=2,
                retry_total=self.max_attempts - 1,
                random_jitter_range=1,
            ),
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_single_get_size": self.chunk_size,
            "max_chunk_get_size": self.chunk_size,
        }
        if self._connection_string is not None:
            service = BlobServiceClient.from_connection_string(self._connection_string, **options)
        else:
            credential = self._credential
            if isinstance(credential, Mapping):
                credential = {"account_name": self.account_name, **credential}
            assert self.account_url is not None  # given, when there is no connection string
            service = BlobServiceClient(self.account_url, credential=credential, **options)
        client = service.get_container_client(self.container)
        if self.create_container:
            self._ensure_container(client)
        return client

    def _ensure_container(self, client: Any) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            client.create_container()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            self._raise(exc, "create the container")
        self._container_confirmed = True

    # -- helpers -----------------------------------------------------------------------------
    @property
    def description(self) -> str:
        account = f"account {self.account_name!r}, " if self.account_name else ""
        where = f" at {self.account_url}" if self.account_url else ""
        return f"{super().description} (Azure {account}container {self.container!r}{where})"

    def key(self, file_id: str) -> str:
        """The blob name of ``file_id``."""
        return self.prefix + file_id

    def _raise(self, exc: BaseException, action: str, file_id: str | None = None) -> NoReturn:
        raise StorageError(self.description, _explain(exc, action, file_id)) from exc

    def _blob(self, file_id: str) -> Any:
        return self.client.get_blob_client(self.key(file_id))

    def _info_from(self, file_id: str, properties: Any) -> FileInfo:
        return decode_metadata(
            file_id,
            properties.metadata,
            content_type=properties.content_settings.content_type,
            content_length=properties.size,
            stored_at=properties.last_modified,
            keys=AZURE_KEYS,
        )

    def _not_found(self, exc: Any, file_id: str) -> FileNotFound:
        """A 404: a missing blob, or a missing container (an error of its own)."""
        if getattr(exc, "error_code", None) == "ContainerNotFound":
            self._raise(exc, "look up", file_id)
        if not self._container_confirmed:
            self._confirm_container()
        return FileNotFound(self.description, file_id)

    def _confirm_container(self) -> None:
        from azure.core.exceptions import AzureError

        try:
            exists = self.client.exists()
        except AzureError as exc:
            self._raise(exc, "check the container")
        if not exists:
            raise StorageError(
                self.description,
                "the container does not exist: create it, or pass create_container=True",
            )
        self._container_confirmed = True

    # -- the primitives ----------------------------------------------------------------------
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContentSettings

        head = read_head(content, self.upload_threshold)
        info = content.info
        blob = self._blob(info.file_id)
        try:
            if content.finished:
                blob.upload_blob(
                    b"".join(head),
                    overwrite=True,
                    metadata=encode_metadata(info, AZURE_KEYS),
                    content_settings=ContentSettings(content_type=info.content_type),
                )
            else:
                self._write_blocks(blob, content, head)
        except AzureError as exc:
            self._raise(exc, "upload", info.file_id)
        self._container_confirmed = True

    def _write_blocks(self, blob: Any, content: IncomingContent, head: list[bytes]) -> None:
        from azure.storage.blob import BlobBlock, ContentSettings

        info = content.info
        # Ids unique to this upload: a concurrent upload to the same name stages its own.
        upload = uuid.uuid4().hex
        blocks = []
        for number, part in enumerate(iter_parts(content, head, self.block_size)):
            if number >= MAX_BLOCKS:
                raise StorageError(
                    self.description,
                    f"file {info.file_id!r} needs more than {MAX_BLOCKS} blocks of "
                    f"{self.block_size} bytes: raise block_size",
                )
            block_id = f"{upload}-{number:06d}"
            blob.stage_block(block_id, part, length=len(part))
            blocks.append(BlobBlock(block_id=block_id))
        blob.commit_block_list(
            blocks,
            metadata=encode_metadata(info, AZURE_KEYS),
            content_settings=ContentSettings(content_type=info.content_type),
        )

    def _open(self, file_id: str) -> StoredFile:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            downloader = self._blob(file_id).download_blob(max_concurrency=1)
        except ResourceNotFoundError as exc:
            raise self._not_found(exc, file_id) from exc
        except AzureError as exc:
            self._raise(exc, "read", file_id)
        self._container_confirmed = True
        properties = downloader.properties
        return AzureStoredFile(
            self, self._info_from(file_id, properties), properties.etag, downloader
        )

    def _download(self, file_id: str, etag: str, position: int) -> Any:
        """A download of the version ``etag`` from byte ``position``."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError

        try:
            return self._blob(file_id).download_blob(
                offset=position,
                max_concurrency=1,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StorageError(
                self.description,
                f"reading file {file_id!r} failed at byte {position}: the file was replaced or "
                "deleted while it was being read; open it again",
            ) from exc
        except AzureError as exc:
            self._raise(exc, "read", file_id)

    def _delete(self, file_id: str) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self._blob(file_id).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError as exc:
            self._not_found(exc, file_id)
        except AzureError as exc:
            self._raise(exc, "delete", file_id)

    def _properties(self, file_id: str) -> Any:
        """The blob's properties (one HEAD), or ``None`` if it is absent."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            properties = self._blob(file_id).get_blob_properties()
        except ResourceNotFoundError as exc:
            self._not_found(exc, file_id)
            return None
        except AzureError as exc:
            self._raise(exc, "look up", file_id)
        self._container_confirmed = True
        return properties

    def _exists(self, file_id: str) -> bool:
        return self._properties(file_id) is not None

    def info(self, file_or_id: StoredFile | str) -> FileInfo:
        """The metadata of a file, with one HEAD request."""
        file_id = self.fileid(file_or_id)
        properties = self._properties(file_id)
        if properties is None:
            raise FileNotFound(self.description, file_id)
        return self._info_from(file_id, properties)

    def _iter_ids(self) -> Iterator[str]:
        from azure.core.exceptions import AzureError

        try:
            # every name, not one level: keys such as 'acme/2026/<uuid>.pdf' nest
            for item in self.client.list_blobs(name_starts_with=self.prefix):
                file_id = item.name[len(self.prefix) :]
                if self.is_valid_id(file_id):
                    yield file_id
        except AzureError as exc:
            self._raise(exc, "list the files")

    # -- URLs --------------------------------------------------------------------------------
    def public_url(
        self, file_or_id: StoredFile | str, *, response: ResponseOverrides | None = None
    ) -> str | None:
        """A URL serving the file without the middleware, per the ``public_url`` option: the
        blob's URL with a read-only service SAS (signed locally with the account key: no
        request), or the base URL and the blob name.

        ``response`` headers travel in the SAS as ``rscd`` (Content-Disposition) and ``rsct``
        (Content-Type), which Azure sends in place of the blob's (Azure docs, "Create a service
        SAS"); an unsigned base URL cannot carry them: with ``response`` given it is ``None``."""
        key = self.key(self.fileid(file_or_id))
        if self.public_url_mode is None:
            return None
        if self.public_url_mode != SIGNED:
            if response is not None:
                return None
            return f"{self.public_url_mode.rstrip('/')}/{quote(key)}"
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        assert self.account_name and self._account_key  # checked by the constructor
        now = datetime.now(timezone.utc)
        sas = generate_blob_sas(
            self.account_name,
            self.container,
            key,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            start=now - SAS_CLOCK_SKEW,
            expiry=now + timedelta(seconds=self.sas_expires),
            content_type=response.content_type if response else None,
            content_disposition=response.content_disposition if response else None,
        )
        blob_url: str = self.client.get_blob_client(key).url
        return f"{blob_url}?{sas}"


class _ChunksBody:
    """A download's chunks read as a body: ``read(size)`` slices them."""

    def __init__(self, downloader: Any) -> None:
        self._chunks = downloader.chunks()
        self._pending = memoryview(b"")

    def read(self, size: int) -> bytes:
        if not self._pending:
            self._pending = memoryview(next(self._chunks, b""))
        data = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return data

    def close(self) -> None:
        self._pending = memoryview(b"")
        self._chunks = iter(())


class AzureStoredFile(BodyStoredFile):
    """A blob being read: the first download, then downloads of the same ETag after a seek."""

    def __init__(self, storage: AzureBlobStorage, info: FileInfo, etag: str, downloader: Any):
        from azure.core.exceptions import AzureError

        self.read_errors = (AzureError,)
        super().__init__(
            info, int(downloader.size or 0), storage.description, _ChunksBody(downloader)
        )
        self._storage = storage
        self._etag = etag

    @property
    def public_url(self) -> str | None:
        return self._storage.public_url(self.file_id)

    def _open_body(self, position: int) -> Body:
        return _ChunksBody(self._storage._download(self.file_id, self._etag, position))


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    """``'A=1;B=2'`` as ``{'a': '1', 'b': '2'}`` (names lowercased; values may hold ``=``)."""
    settings = {}
    for part in connection_string.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            settings[name.lower()] = value
    if "accountname" not in settings and "blobendpoint" not in settings:
        raise ConfigurationError(
            "AzureBlobStorage: the connection string names no AccountName nor BlobEndpoint"
        )
    return settings


def _is_sas(credential: str) -> bool:
    return credential.startswith("?") or "sig=" in credential


def _account_from_url(url: str) -> str | None:
    """The account of ``https://<account>.blob.core.windows.net`` or of an emulator's
    ``http://127.0.0.1:10000/<account>``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    path = parts.path.strip("/")
    return path.split("/", 1)[0] or None


_ERROR_HINTS = {
    "ContainerNotFound": "the container does not exist: create it, or pass create_container=True",
    "AuthenticationFailed": (
        "authentication failed: check the account key or SAS token (and the clock: signatures "
        "expire)"
    ),
    "AuthorizationFailure": (
        "not authorised: check the account key or SAS token (a wrong key fails its signature) "
        "and the credential's permissions"
    ),
    "AuthorizationPermissionMismatch": (
        "not authorised: the credential needs the Storage Blob Data Contributor role on the "
        "container"
    ),
    "InvalidBlockList": (
        "the upload's blocks were discarded, by a concurrent upload to the same file: try again"
    ),
    "ServerBusy": "the server asks to slow down: retry later",
}


def _explain(exc: BaseException, action: str, file_id: str | None) -> str:
    """A message naming what was attempted and why it failed, with what to do."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    what = f"{action} {file_id!r}" if file_id else action
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or ""
        code = str(getattr(code, "value", code))  # the library gives an enum or a str
        hint = _ERROR_HINTS.get(code)
        if hint is None and (isinstance(exc, ClientAuthenticationError) or exc.status_code == 403):
            hint = _ERROR_HINTS["AuthenticationFailed"]
        message = (exc.message or str(exc)).splitlines()[0]
        detail = f"{code or exc.status_code}: {message}"
        return f"{what} failed: {hint} ({detail})" if hint else f"{what} failed: {detail}"
    if isinstance(exc, ServiceRequestError):
        return f"{what} failed: cannot connect to the server, is it running? ({exc})"
    if isinstance(exc, ServiceResponseError):
        return f"{what} failed: the connection failed before the server answered ({exc})"
    return f"{what} failed: {type(exc).__name__}: {exc}"
