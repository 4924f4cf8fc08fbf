"""Fixtures of the ORM suite.

* ``depot``: the default storage, of the kind named by ``SA_DEPOT_ORM_STORAGE`` (``local`` by
  default; ``memory``; ``s3``, ``gcs``, ``azure``, ``swift``: a prefix per storage in a bucket
  or container of the suite's SeaweedFS, fake-gcs-server, Azurite or Swift server).
  Another backend plugs in with one entry in
  :data:`STORAGE_CONFIGS`. ``stored()`` lists what it holds, as ``'default/<id>'`` paths.
* ``engine``: an Engine on each of SQLite, PostgreSQL and MariaDB (through ``db_url``), with
  sa_depot's own tables created. SQLite gets a new file per test; on the servers the tables
  live for a module and are emptied after each test (DDL would otherwise dominate the time).
* ``models``: the module's mapped classes (unique table names), their tables created in
  ``engine`` and empty.

At the end of each module the lifecycle is uninstalled, so that the next module's models
equip themselves again (and the uninstall path is exercised).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    relationship,
)

from sa_depot import schema
from sa_depot.database import provision
from sa_depot.fields import lifecycle
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.orm import records
from sa_depot.orm.install import install_for_mapper, installed_mappers, watch_mappers
from sa_depot.orm.mapped import file_fields_of

StorageConfig = Callable[[Path], dict[str, str]]

STORAGE_CONFIGS: dict[str, StorageConfig] = {
    "local": lambda tmp: {
        "depot.backend": "sa_depot.io.local.LocalFileStorage",
        "depot.storage_path": str(tmp / "files"),
        "depot.fsync": "false",  # durability is the storage suite's business; keep this fast
    },
    "memory": lambda tmp: {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"},
}
STORAGE_KIND = os.environ.get("SA_DEPOT_ORM_STORAGE", "local")


#: ``SA_DEPOT_ORM_STORAGE`` kinds served by a server of the suite: the server fixture, a new
#: bucket or container on it, and the backend's options for a storage with its own prefix.
SERVER_STORAGES: dict[
    str, tuple[str, Callable[[Any], str], Callable[[Any, str], dict[str, Any]]]
] = {
    "s3": (
        "s3_server",
        lambda server: server.new_bucket(),  # one: SeaweedFS gives each bucket volumes of its own
        lambda server, space: {
            "backend": "sa_depot.io.boto3.S3Storage",
            **server.storage_options(bucket=space),
        },
    ),
    "gcs": (
        "gcs_server",
        lambda server: server.new_bucket(),
        lambda server, space: {
            "backend": "sa_depot.io.gcs.GCSStorage",
            "bucket": space,
            **server.storage_options(),
        },
    ),
    "azure": (
        "azure_server",
        lambda server: server.new_container(),
        lambda server, space: {
            "backend": "sa_depot.io.azure.AzureBlobStorage",
            "container": space,
            **server.storage_options(),
        },
    ),
    "swift": (
        "swift_server",
        lambda server: server.new_container(),
        lambda server, space: {
            "backend": "sa_depot.io.swift.SwiftStorage",
            "container": space,
            **server.storage_options(),
        },
    ),
}


@pytest.fixture(scope="session", autouse=True)
def _server_storage_config(request: pytest.FixtureRequest) -> Iterator[None]:
    """With ``SA_DEPOT_ORM_STORAGE`` naming a server kind (``s3``, ``gcs``, ``azure``,
    ``swift``), storages are prefixes of one bucket or container on the suite's server."""
    if STORAGE_KIND not in SERVER_STORAGES:
        yield
        return
    fixture, new_space, options = SERVER_STORAGES[STORAGE_KIND]
    server = request.getfixturevalue(fixture)
    space = new_space(server)

    def server_config(tmp: Path) -> dict[str, str]:
        config = {**options(server, space), "prefix": f"{uuid.uuid4().hex}/"}
        return {f"depot.{key}": str(value) for key, value in config.items()}

    STORAGE_CONFIGS[STORAGE_KIND] = server_config
    yield
    del STORAGE_CONFIGS[STORAGE_KIND]


@dataclass
class Depot:
    storage: FileStorage
    name: str = "default"

    def stored(self) -> set[str]:
        """Every stored file, as ``'default/<id>'``."""
        return {f"{self.name}/{file_id}" for file_id in self.storage.list()}

    def read(self, uploaded: UploadedFile) -> bytes:
        with uploaded.file as stored:
            return stored.read()


def configure_storage(name: str, kind: str, tmp: Path) -> FileStorage:
    return DepotManager.configure(name, STORAGE_CONFIGS[kind](tmp / name))


@pytest.fixture
def depot(tmp_path: Path) -> Depot:
    return Depot(configure_storage("default", STORAGE_KIND, tmp_path))


@pytest.fixture(autouse=True)
def _fresh_lifecycle() -> Iterator[None]:
    yield
    records.remove_abandoned()
    lifecycle.configure(journal=True)
    provision.forget()


@pytest.fixture(scope="module", autouse=True)
def _lifecycle_per_module() -> Iterator[None]:
    """Each module's models equip themselves afresh, and the uninstall path runs once per
    module (mapped classes live for a module: see ``models``). Classes mapped when their
    module was imported (other directories' tests, the demo's models) are equipped again
    afterwards, as an application's would be: nothing maps them a second time."""
    yield
    imported = [
        (mapper, dict(fields))
        for mapper in installed_mappers()
        if (fields := file_fields_of(mapper)) is not None
        and getattr(sys.modules.get(mapper.class_.__module__), mapper.class_.__name__, None)
        is mapper.class_
    ]
    lifecycle.uninstall()
    for mapper, fields in imported:
        install_for_mapper(mapper, fields)
    watch_mappers()


def make_engine(url: str) -> sa.Engine:
    """An Engine; on SQLite, with the transaction handling SQLAlchemy documents for pysqlite.

    pysqlite (before Python 3.12's ``autocommit``) only emits BEGIN before DML, so a
    SAVEPOINT opened first starts, and its RELEASE commits, the whole transaction, and
    Session(bind=connection) recipes break. Emitting BEGIN ourselves fixes that; IMMEDIATE
    also takes the write lock at once, so that writing threads queue instead of deadlocking.
    """
    if not url.startswith("sqlite"):
        return sa.create_engine(url)
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass
class ServerDatabase:
    """An Engine on a server database, and the models created in it, kept for a module:
    creating and dropping tables for every test would dominate the suite's time."""

    engine: sa.Engine
    models: Models | None = None


@pytest.fixture(scope="module")
def _server_databases() -> Iterator[dict[str, ServerDatabase]]:
    databases: dict[str, ServerDatabase] = {}
    yield databases
    for database in databases.values():
        if database.models is not None:
            database.models.drop(database.engine)
        schema.metadata.drop_all(database.engine)
        database.engine.dispose()


@pytest.fixture
def engine(db_url: str, _server_databases: dict[str, ServerDatabase]) -> Iterator[sa.Engine]:
    """An Engine with sa_depot's tables, on SQLite (a new file per test), PostgreSQL and
    MariaDB (one per module, the tables emptied after each test)."""
    if db_url.startswith("sqlite"):
        engine = make_engine(db_url)
        schema.metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    database = _server_databases.get(db_url)
    if database is None:
        database = _server_databases[db_url] = ServerDatabase(make_engine(db_url))
        schema.metadata.create_all(database.engine)
    yield database.engine
    with database.engine.begin() as conn:
        if database.models is not None:
            for table in reversed(database.models.Base.metadata.sorted_tables):
                conn.execute(table.delete())
        schema.metadata.create_all(conn)  # a test may have dropped some
        for table in schema.metadata.sorted_tables:
            conn.execute(table.delete())


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@dataclass
class Models:
    Base: type[DeclarativeBase]
    Document: Any
    Attachment: Any

    def create(self, engine: sa.Engine) -> None:
        self.Base.metadata.create_all(engine)

    def drop(self, engine: sa.Engine) -> None:
        self.Base.metadata.drop_all(engine)


def make_models() -> Models:
    """Documents with a unique name and a file, owning attachments (delete-orphan)."""
    documents, attachments = unique("documents"), unique("attachments")

    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = documents
        # SQLite would reuse the id of a row deleted in the transaction, which confuses the
        # identity map of a session that later rolls the deletion back (SQLAlchemy warns).
        __table_args__ = {"sqlite_autoincrement": True}
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(50), unique=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
        attachments: Mapped[list[Attachment]] = relationship(
            back_populates="document", cascade="all, delete-orphan"
        )

    class Attachment(Base):
        __tablename__ = attachments
        __table_args__ = {"sqlite_autoincrement": True}
        id: Mapped[int] = mapped_column(primary_key=True)
        document_id: Mapped[int] = mapped_column(sa.ForeignKey(f"{documents}.id"))
        file: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
        document: Mapped[Document] = relationship(back_populates="attachments")

    return Models(Base, Document, Attachment)


@pytest.fixture(scope="module")
def _models_of_module(request: pytest.FixtureRequest) -> Iterator[Models]:
    built = make_models()
    yield built
    built.Base.registry.dispose()


@pytest.fixture
def models(
    engine: sa.Engine,
    depot: Depot,
    db_url: str,
    _models_of_module: Models,
    _server_databases: dict[str, ServerDatabase],
) -> Models:
    """The module's documents and attachments, with their tables in ``engine``, empty."""
    if db_url.startswith("sqlite"):
        _models_of_module.create(engine)
    else:
        database = _server_databases[db_url]
        if database.models is None:
            _models_of_module.create(engine)
            database.models = _models_of_module
    return _models_of_module
