"""Fixtures of the ORM suite.

* ``depot``: the default storage, of the kind named by ``SA_DEPOT_ORM_STORAGE`` (``local`` by
  default; ``memory`` too). A new backend (S3...) plugs in with one entry in
  :data:`STORAGE_CONFIGS`. ``stored()`` lists what it holds, as ``'default/<id>'`` paths.
* ``engine``: an Engine on each of SQLite, PostgreSQL and MariaDB (through ``db_url``), with
  sa_depot's own tables created; every table is dropped at teardown.
* ``models``: a fresh set of mapped classes (unique table names) created in ``engine``.

After each test the lifecycle is uninstalled, so that the next test's models equip
themselves again (and the uninstall path is exercised on every test).
"""

from __future__ import annotations

import gc
import os
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
from sa_depot.fields import lifecycle, ownership
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager

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
    gc.collect()
    ownership.remove_abandoned()
    lifecycle.uninstall()
    lifecycle.configure(journal=True)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    schema.metadata.create_all(engine)
    yield engine
    engine.dispose()
    cleanup = sa.create_engine(db_url)
    with cleanup.begin() as conn:
        schema.metadata.drop_all(conn)
    cleanup.dispose()


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
        self.Base.registry.dispose()


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


@pytest.fixture
def models(engine: sa.Engine, depot: Depot) -> Iterator[Models]:
    built = make_models()
    built.create(engine)
    yield built
    built.drop(engine)
