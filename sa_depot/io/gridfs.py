"""MongoDB GridFS storage.

Files use the GridFS layout (a ``<collection>.files`` document per file, its content in
``<collection>.chunks``), so ``gridfs.GridFS``, ``mongofiles`` and filedepot read them, and files
written by filedepot or ``gridfs`` are read here. File ids are the ObjectId of the files
document, as 24 lowercase hex digits. Files copied from another storage keep their ids: a UUID
id is stored as a string ``_id`` (GridFS allows any ``_id``).

The two collections are written and read with plain pymongo operations rather than through
``gridfs.GridIn``/``GridOut``: ``GridIn`` buffers up to 48 MB of chunks before inserting them,
and ``GridOut``'s cursor fetches batches of up to 16 MB, while this storage keeps memory at about
one chunk. (``GridFSBucket.upload_from_stream`` is also unusable on mongomock.)

Writes are atomic: chunks go first and the files document, which makes the file visible, is
inserted last; a failed write removes its chunks. A replace writes a complete new version (a
files document with a new ``_id`` and ``metadata.sa_depot_id`` naming the file id), then deletes
the previous ones, so readers see the old version or the new one, never a mix, and a failed
replace leaves the old version intact. A file whose versions all failed to be removed (a crash
in between) is read as its newest version; :meth:`GridFSStorage.remove_incomplete` removes
orphan chunks and superseded versions.

Metadata: ``filename`` and ``contentType`` at the top of the files document (where GridFS tools
and filedepot look), ``last_modified`` too (filedepot's field), and
``metadata: {sa_depot_id, sha256, extra}``.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from sa_depot.exceptions import ConfigurationError, FileNotFound, StorageError
from sa_depot.io.interfaces import (
    FileInfo,
    FileStorage,
    IncomingContent,
    PositionedStoredFile,
    StoredFile,
    parse_timestamp,
)

log = logging.getLogger(__name__)

#: GridFS's default chunk size (255 KiB: a chunk and its document fit a 256 KiB allocation).
DEFAULT_GRIDFS_CHUNK_SIZE = 255 * 1024
#: Files up to this size are read completely when opened, so that a concurrent replace can
#: never make them fail half-way.
PREFETCH_BYTES = 1024 * 1024
#: Bytes of chunks a read cursor fetches per round trip.
READ_BATCH_BYTES = 4 * 1024 * 1024
_OBJECT_ID_RE = re.compile(r"\A[0-9a-f]{24}\Z")
_VERSION_FIELD = "metadata.sa_depot_id"
_OPEN_ATTEMPTS = 3


class GridFSStorage(FileStorage):
    """Files stored in MongoDB's GridFS.

    :param mongouri: a MongoDB URI naming the database
        (``'mongodb://user:pw@host/mydb?serverSelectionTimeoutMS=5000'``), or a
        ``pymongo.MongoClient`` (its default database is used) or ``Database`` (tests pass
        mongomock's).
    :param collection: the GridFS bucket name: documents go to ``<collection>.files`` and
        ``<collection>.chunks`` (filedepot's default, ``'filedepot'``).
    :param chunk_size: the GridFS chunk size of new files, and the size of reads.

    The constructor makes no network call: pymongo connects on first use.
    """

    id_format = (
        "a 24-character lowercase hexadecimal ObjectId such as '5f43a1b2c3d4e5f6a7b8c9d0' "
        "(or the UUID of a file copied from another storage)"
    )

    def __init__(
        self,
        mongouri: Any,
        collection: str = "filedepot",
        chunk_size: int = DEFAULT_GRIDFS_CHUNK_SIZE,
    ) -> None:
        if importlib.util.find_spec("pymongo") is None:
            raise ConfigurationError(
                "GridFSStorage needs pymongo, which is not installed: pip install pymongo "
                "(or install sa-depot with its gridfs extra, e.g. pip install -e '.[gridfs]' "
                "in a clone)"
            )
        if not isinstance(collection, str) or not collection or "$" in collection:
            raise ConfigurationError(f"GridFSStorage: invalid collection name {collection!r}")
        if not 1 <= chunk_size <= 15 * 1024 * 1024:
            raise ConfigurationError(
                f"GridFSStorage: chunk_size must be between 1 byte and 15 MiB, not {chunk_size}"
            )
        self.collection = collection
        self.chunk_size = chunk_size
        self._uri: str | None = None
        self._where: str | None = None
        self._database: Any = None
        self._client: Any = None
        if isinstance(mongouri, str):
            self._uri = mongouri
            self._where = self._check_uri(mongouri, collection)
        # Checked on the type: a Database answers any attribute with a Collection.
        elif hasattr(type(mongouri), "get_default_database"):  # a MongoClient
            self._client = mongouri
        elif hasattr(type(mongouri), "get_collection"):  # a Database
            self._database = mongouri
        else:
            raise ConfigurationError(
                f"GridFSStorage: mongouri must be a MongoDB URI, a MongoClient or a Database, "
                f"not {type(mongouri).__name__}"
            )
        self._lock = threading.Lock()
        self._indexes_ready = False

    @staticmethod
    def _check_uri(uri: str, collection: str) -> str | None:
        """Validate a URI without network access; return "db.collection at hosts"."""
        if uri.startswith("mongodb+srv://"):
            return None  # parsing an SRV URI queries DNS: leave it to the first use
        from pymongo.errors import PyMongoError
        from pymongo.uri_parser import parse_uri

        try:
            parsed = parse_uri(uri)
        except (ValueError, TypeError, PyMongoError) as exc:  # InvalidURI is a PyMongoError
            raise ConfigurationError(f"GridFSStorage: invalid MongoDB URI: {exc}") from exc
        if not parsed.get("database"):
            raise ConfigurationError(
                "GridFSStorage: the MongoDB URI names no database; add it to the path, as in "
                "'mongodb://localhost:27017/mydb'"
            )
        hosts = ",".join(f"{host}:{port}" for host, port in parsed.get("nodelist", []))
        return f"{parsed['database']}.{collection} at {hosts}"

    # -- connection --------------------------------------------------------------------------
    @property
    def database(self) -> Any:
        """The pymongo (or mongomock) Database, connected lazily."""
        if self._database is None:
            with self._lock:
                if self._database is None:
                    self._database = self._connect()
        return self._database

    def _connect(self) -> Any:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        try:
            if self._client is None:
                self._client = MongoClient(self._uri, connect=False)
            return self._client.get_default_database()
        except PyMongoError as exc:
            raise StorageError(self.description, f"cannot use the MongoDB URI: {exc}") from exc

    @property
    def files(self) -> Any:
        return self.database[f"{self.collection}.files"]

    @property
    def chunks(self) -> Any:
        return self.database[f"{self.collection}.chunks"]

    @property
    def description(self) -> str:
        where = self._where
        if where is None:
            try:
                database = self._database
                where = f"{database.name}.{self.collection}" if database is not None else None
            except AttributeError:
                where = None
        return f"{super().description} (GridFS {where or self.collection})"

    def _raise(self, exc: Exception, action: str, file_id: str | None = None) -> NoReturn:
        raise StorageError(self.description, _explain(exc, action, file_id)) from exc

    def _ensure_indexes(self) -> None:
        """The indexes GridFS specifies, plus one to find a file's versions."""
        if self._indexes_ready:
            return
        from pymongo import ASCENDING

        self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)
        self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
        self.files.create_index([(_VERSION_FIELD, ASCENDING)], sparse=True)
        self._indexes_ready = True

    # -- ids ---------------------------------------------------------------------------------
    def new_file_id(self) -> str:
        from bson import ObjectId

        return str(ObjectId())

    def is_valid_id(self, file_id: str) -> bool:
        return _OBJECT_ID_RE.match(file_id) is not None or super().is_valid_id(file_id)

    @staticmethod
    def _key(file_id: str) -> Any:
        """The ``_id`` of the files document of a valid id: an ObjectId, or the UUID string."""
        from bson import ObjectId

        return ObjectId(file_id) if _OBJECT_ID_RE.match(file_id) else file_id

    # -- versions ----------------------------------------------------------------------------
    def _versions(self, file_id: str, projection: Mapping[str, Any] | None = None) -> list[Any]:
        """The files documents of ``file_id``, newest first."""
        oid = self._key(file_id)
        cursor = self.files.find(
            {"$or": [{"_id": oid}, {_VERSION_FIELD: oid}]},
            projection,
            sort=[("uploadDate", -1), ("_id", -1)],
        )
        return list(cursor)

    def _remove_version(self, version_id: Any) -> None:
        """Delete a version: its files document first, so it never shows without chunks."""
        self.files.delete_one({"_id": version_id})
        self.chunks.delete_many({"files_id": version_id})

    # -- the primitives ----------------------------------------------------------------------
    def _write(self, content: IncomingContent, *, replace: bool) -> None:
        from bson import Binary, ObjectId
        from pymongo.errors import PyMongoError

        info = content.info
        file_oid = self._key(info.file_id)
        try:
            self._ensure_indexes()
            previous = self._versions(info.file_id, {"_id": 1}) if replace else []
            version = ObjectId() if previous else file_oid
            if replace and not previous:
                # No files document refers to these: chunks of a write that crashed.
                self.chunks.delete_many({"files_id": version})
        except PyMongoError as exc:
            self._raise(exc, "prepare the upload", info.file_id)

        size = self.chunk_size
        pending = bytearray()
        number = 0
        try:
            for data in content.chunks():
                pending += data
                while len(pending) >= size:
                    with memoryview(pending) as view:
                        piece = Binary(bytes(view[:size]))
                    del pending[:size]
                    self._insert_chunk(version, number, piece, info.file_id)
                    number += 1
            if pending:
                self._insert_chunk(version, number, Binary(bytes(pending)), info.file_id)
            document = {
                "_id": version,
                "length": info.content_length,
                "chunkSize": size,
                "uploadDate": datetime.now(timezone.utc),
                "filename": info.filename,
                "contentType": info.content_type,
                "last_modified": info.last_modified,
                "metadata": {
                    "sa_depot_id": file_oid,
                    "sha256": info.checksum,
                    "extra": dict(info.extra),
                },
            }
            try:
                self.files.insert_one(document)
            except PyMongoError as exc:
                self._raise(exc, "store the file document", info.file_id)
        except BaseException:
            self._discard_chunks(version)
            raise
        for old in previous:
            try:
                self._remove_version(old["_id"])
            except PyMongoError as exc:  # the new version is stored and read first
                log.warning(
                    "%s: could not remove version %s of %s (%s); remove_incomplete() will",
                    self.description,
                    old["_id"],
                    info.file_id,
                    exc,
                )

    def _insert_chunk(self, version: Any, number: int, data: Any, file_id: str) -> None:
        from pymongo.errors import PyMongoError

        try:
            self.chunks.insert_one({"files_id": version, "n": number, "data": data})
        except PyMongoError as exc:
            self._raise(exc, f"store chunk {number} of", file_id)

    def _discard_chunks(self, version: Any) -> None:
        from pymongo.errors import PyMongoError

        try:
            self.chunks.delete_many({"files_id": version})
        except PyMongoError as exc:
            log.warning(
                "%s: could not remove the chunks of a failed upload (%s); they are invisible "
                "and remove_incomplete() removes them",
                self.description,
                exc,
            )

    def _open(self, file_id: str) -> StoredFile:
        from pymongo.errors import PyMongoError

        for _ in range(_OPEN_ATTEMPTS):
            try:
                versions = self._versions(file_id)
            except PyMongoError as exc:
                self._raise(exc, "read", file_id)
            if not versions:
                raise FileNotFound(self.description, file_id)
            stored = GridFSStoredFile(self, _info_from(file_id, versions[0]), versions[0])
            try:
                stored.prefetch()
            except _VersionGone:
                stored.close()
                continue  # replaced or deleted while opening: look again
            return stored
        raise StorageError(
            self.description,
            f"file {file_id!r} kept changing while being opened; try again",
        )

    def _delete(self, file_id: str) -> None:
        from pymongo.errors import PyMongoError

        try:
            for version in self._versions(file_id, {"_id": 1}):
                self._remove_version(version["_id"])
        except PyMongoError as exc:
            self._raise(exc, "delete", file_id)

    def _exists(self, file_id: str) -> bool:
        from pymongo.errors import PyMongoError

        oid = self._key(file_id)
        try:
            found = self.files.find_one({"$or": [{"_id": oid}, {_VERSION_FIELD: oid}]}, {"_id": 1})
        except PyMongoError as exc:
            self._raise(exc, "look up", file_id)
        return found is not None

    def info(self, file_or_id: StoredFile | str) -> FileInfo:
        """The metadata of a file, with one query."""
        from pymongo.errors import PyMongoError

        file_id = self.fileid(file_or_id)
        try:
            versions = self._versions(file_id)
        except PyMongoError as exc:
            self._raise(exc, "look up", file_id)
        if not versions:
            raise FileNotFound(self.description, file_id)
        return _info_from(file_id, versions[0])

    def _iter_ids(self) -> Iterator[str]:
        from pymongo.errors import PyMongoError

        seen: set[str] = set()
        try:
            for document in self.files.find({}, {"_id": 1, _VERSION_FIELD: 1}):
                owner = (document.get("metadata") or {}).get("sa_depot_id") or document["_id"]
                file_id = str(owner)
                if file_id not in seen and self.is_valid_id(file_id):
                    seen.add(file_id)
                    yield file_id
        except PyMongoError as exc:
            self._raise(exc, "list the files")

    # -- maintenance -------------------------------------------------------------------------
    def remove_incomplete(self, older_than: timedelta = timedelta(hours=1)) -> list[str]:
        """Remove what interrupted writes left: chunks without a files document and versions
        superseded by a newer one, when older than ``older_than``. Returns the removed
        versions' ids (files_id of the chunks)."""
        from pymongo.errors import PyMongoError

        cutoff = datetime.now(timezone.utc) - older_than
        removed: list[str] = []
        try:
            for first in self.chunks.find({"n": 0}, {"files_id": 1}):
                version = first["files_id"]
                created = getattr(first["_id"], "generation_time", None)
                if created is None or created >= cutoff:
                    continue
                if self.files.find_one({"_id": version}, {"_id": 1}) is None:
                    self.chunks.delete_many({"files_id": version})
                    removed.append(str(version))
            for file_id in list(self._iter_ids()):
                versions = self._versions(file_id, {"_id": 1, "uploadDate": 1})
                newest = versions[0]
                if len(versions) > 1 and _as_utc(newest.get("uploadDate")) < cutoff:
                    for old in versions[1:]:
                        self._remove_version(old["_id"])
                        removed.append(str(old["_id"]))
        except PyMongoError as exc:
            self._raise(exc, "remove incomplete uploads")
        return removed


class _VersionGone(Exception):
    """The version being read lost its chunks: it was replaced or deleted meanwhile."""


class GridFSStoredFile(PositionedStoredFile):
    """A GridFS file being read, chunk by chunk, with seeking."""

    def __init__(self, storage: GridFSStorage, info: FileInfo, document: Mapping[str, Any]):
        chunk_size = int(document.get("chunkSize") or DEFAULT_GRIDFS_CHUNK_SIZE)
        super().__init__(info, int(document.get("length") or 0), chunk_size)
        self._storage = storage
        self._version = document["_id"]
        self._chunk_size = chunk_size
        self._chunk_count = -(-self._length // self._chunk_size)
        #: Chunks already fetched and not yet consumed: {n: bytes}.
        self._cached: dict[int, bytes] = {}
        self._cursor: Any = None
        self._next_n = 0

    def prefetch(self) -> None:
        """Fetch small files whole (and the first chunks of larger ones) at open time."""
        if self._length == 0:
            return
        wanted = max(1, min(self._chunk_count, PREFETCH_BYTES // self._chunk_size))
        found = list(
            self._storage.chunks.find(
                {"files_id": self._version, "n": {"$lt": wanted}}, sort=[("n", 1)]
            )
        )
        if [c["n"] for c in found] != list(range(wanted)):
            raise _VersionGone
        self._cached = {c["n"]: self._check(c) for c in found}
        self._next_n = wanted

    def _check(self, chunk: Mapping[str, Any]) -> bytes:
        n = chunk["n"]
        data = bytes(chunk["data"])
        expected = (
            self._chunk_size
            if n < self._chunk_count - 1
            else self._length - self._chunk_size * (self._chunk_count - 1)
        )
        if len(data) != expected:
            raise StorageError(
                self._storage.description,
                f"file {self.file_id!r} is corrupt: chunk {n} holds {len(data)} bytes, "
                f"{expected} expected",
            )
        return data

    def _read_at(self, size: int) -> bytes:
        n, offset = divmod(self._position, self._chunk_size)
        return self._chunk(n)[offset : offset + size]

    def _chunk(self, n: int) -> bytes:
        from pymongo.errors import PyMongoError

        cached = self._cached.get(n)
        if cached is not None:
            # Reads move forward: drop what is behind (a seek back fetches it again).
            self._cached = {k: v for k, v in self._cached.items() if k >= n}
            return cached
        if self._cursor is None or self._next_n != n:
            self._close_cursor()
            batch = max(1, READ_BATCH_BYTES // self._chunk_size)
            self._cursor = self._storage.chunks.find(
                {"files_id": self._version, "n": {"$gte": n}}, sort=[("n", 1)], batch_size=batch
            )
            self._next_n = n
        try:
            chunk = next(self._cursor, None)
        except PyMongoError as exc:
            self._close_cursor()
            self._storage._raise(exc, f"read chunk {n} of", self.file_id)
        if chunk is None or chunk["n"] != n:
            self._close_cursor()
            raise StorageError(
                self._storage.description,
                f"file {self.file_id!r}: chunk {n} is missing; the file was replaced or "
                "deleted while being read, open it again",
            )
        data = self._check(chunk)
        self._next_n = n + 1
        self._cached = {n: data}
        return data

    def _close_cursor(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None and hasattr(cursor, "close"):
            cursor.close()

    def close(self) -> None:
        self._close_cursor()
        self._cached = {}
        super().close()


def _as_utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.now(timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _info_from(file_id: str, document: Mapping[str, Any]) -> FileInfo:
    """FileInfo from a files document (ours, filedepot's or any GridFS writer's)."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    modified = document.get("last_modified") or document.get("uploadDate")
    extra = metadata.get("extra")
    return FileInfo(
        file_id=file_id,
        filename=document.get("filename"),
        content_type=document.get("contentType")
        or document.get("content_type")
        or "application/octet-stream",
        last_modified=parse_timestamp(modified).replace(microsecond=0),
        content_length=document.get("length"),
        checksum=metadata.get("sha256"),
        extra={str(k): str(v) for k, v in extra.items()} if isinstance(extra, Mapping) else {},
    )


def _explain(exc: Exception, action: str, file_id: str | None) -> str:
    from pymongo.errors import (
        ConnectionFailure,
        ExecutionTimeout,
        NetworkTimeout,
        OperationFailure,
        ServerSelectionTimeoutError,
    )

    what = f"{action} {file_id!r}" if file_id else action
    if isinstance(exc, ServerSelectionTimeoutError):
        return (
            f"{what} failed: cannot reach the MongoDB server, is it running? "
            f"({str(exc).split(', Timeout:')[0]})"
        )
    if isinstance(exc, (NetworkTimeout, ExecutionTimeout)):
        return f"{what} failed: the MongoDB server did not answer in time ({exc})"
    if isinstance(exc, ConnectionFailure):
        return f"{what} failed: the connection to MongoDB failed ({exc})"
    if isinstance(exc, OperationFailure):
        if exc.code == 18:
            return f"{what} failed: authentication failed, check the user and password ({exc})"
        if exc.code == 13:
            return f"{what} failed: the MongoDB user is not authorized ({exc})"
        return f"{what} failed: MongoDB error {exc.code}: {exc}"
    return f"{what} failed: {type(exc).__name__}: {exc}"
