"""The application the crash and soak tests run in child processes and audit in the parent.

``build(prefix, storage_dir)`` configures a local storage named ``default`` and returns fresh
mapped classes whose tables are named after ``prefix`` (so that tests sharing one database do
not meet). Documents own a file with a derivative (so that ``files`` has two paths) and
attachments (a second table, delete-orphan cascade).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sa_depot.collector import collect
from sa_depot.database.journal import flush_completed
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField, UploadedFileListField
from sa_depot.fields.upload import UploadedFile, uploaded_files_in
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager
from sa_depot.schema import pending_removals


class Derivative(FileFilter):
    """Stores a small derivative next to every file (as a thumbnail would be)."""

    def on_save(self, uploaded_file: UploadedFile) -> None:
        path, file_id = uploaded_file.store_content(
            b"derivative of " + str(uploaded_file["checksum"]).encode(),
            f"{uploaded_file.get('filename') or 'file'}.derived",
        )
        uploaded_file["derived_path"] = path


@dataclass
class App:
    Base: type[DeclarativeBase]
    Document: Any
    Attachment: Any
    storage: LocalFileStorage

    @property
    def metadata(self) -> sa.MetaData:
        return self.Base.metadata


def configure_storage(storage_dir: str) -> LocalFileStorage:
    if "default" in DepotManager.names():
        storage = DepotManager.get("default")
    else:
        storage = DepotManager.configure(
            "default", {"depot.storage_path": storage_dir, "depot.fsync": "false"}
        )
    assert isinstance(storage, LocalFileStorage)
    return storage


def build(prefix: str, storage_dir: str) -> App:
    storage = configure_storage(storage_dir)

    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = f"{prefix}_documents"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(60), unique=True)
        content: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(filters=[Derivative()])
        )
        attachments: Mapped[list[Attachment]] = relationship(
            back_populates="document", cascade="all, delete-orphan"
        )
        gallery: Mapped[list[UploadedFile]] = mapped_column(UploadedFileListField())

    class Attachment(Base):
        __tablename__ = f"{prefix}_attachments"
        id: Mapped[int] = mapped_column(primary_key=True)
        document_id: Mapped[int] = mapped_column(sa.ForeignKey(f"{prefix}_documents.id"))
        file: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
        document: Mapped[Document] = relationship(back_populates="attachments")

    return App(Base, Document, Attachment, storage)


@dataclass
class Audit:
    """The state of database and storage, as the guarantees count it."""

    #: Paths referenced by a committed row whose file is missing or reads back wrong.
    missing: list[str] = field(default_factory=list)
    #: Stored files no committed row references.
    orphans: list[str] = field(default_factory=list)
    #: Files on disk that are not the metadata or content of a stored file (interrupted
    #: writes).
    leftovers: list[str] = field(default_factory=list)
    journal_rows: int = 0
    rows: int = 0
    referenced: int = 0

    def counts(self) -> str:
        return (
            f"rows={self.rows} referenced={self.referenced} missing={len(self.missing)} "
            f"orphans={len(self.orphans)} leftovers={len(self.leftovers)} "
            f"journal={self.journal_rows}"
        )


def audit(engine: sa.Engine, app: App) -> Audit:
    """Read every committed row, check every file it references byte for byte (checksum),
    and list what the storage holds beyond that."""
    result = Audit()
    referenced: set[str] = set()
    flush_completed(engine)  # this process's rows of files already removed, deleted in batches
    with engine.connect() as conn:
        for table, column in [
            (app.Document.__table__, "content"),
            (app.Document.__table__, "gallery"),
            (app.Attachment.__table__, "file"),
        ]:
            for (value,) in conn.execute(sa.select(table.c[column])):
                result.rows += int(column != "gallery")
                for uploaded in uploaded_files_in(value):
                    referenced.update(uploaded.files)
                    if not _reads_back(uploaded):
                        result.missing.append(uploaded.path)
                    result.missing.extend(p for p in uploaded.files[1:] if not _exists(p))
        if sa.inspect(conn).has_table(pending_removals.name):
            result.journal_rows = conn.execute(
                sa.select(sa.func.count()).select_from(pending_removals)
            ).scalar_one()
    stored = {f"default/{i}" for i in app.storage.list()}
    result.referenced = len(referenced)
    result.orphans = sorted(stored - referenced)
    result.leftovers = _leftovers(app.storage, stored)
    return result


def _exists(path: str) -> bool:
    storage_name, file_id = DepotManager.split_path(path)
    return DepotManager.get(storage_name).exists(file_id)


def _reads_back(value: UploadedFile) -> bool:
    if not _exists(value.path):
        return False
    digest = hashlib.sha256()
    with value.file as stored:
        for chunk in stored.chunks():
            digest.update(chunk)
    return digest.hexdigest() == value.checksum


def _leftovers(storage: LocalFileStorage, stored: set[str]) -> list[str]:
    """Every file under the storage directory that is neither the metadata nor the current
    content of a stored file."""
    expected: set[str] = set()
    for path in stored:
        with DepotManager.get_file(path) as opened:
            expected.add(os.path.realpath(opened.local_path or ""))
        file_id = path.split("/", 1)[1]
        expected.add(
            os.path.realpath(
                os.path.join(storage.storage_path, file_id[:2], file_id[2:4], f"{file_id}.json")
            )
        )
    found: list[str] = []
    for root, _dirs, files in os.walk(storage.storage_path):
        for name in files:
            full = os.path.realpath(os.path.join(root, name))
            if full not in expected:
                found.append(full)
    return sorted(found)


def collect_all(engine: sa.Engine, app: App, **options: Any) -> Any:
    return collect(engine, app.metadata, **options)
