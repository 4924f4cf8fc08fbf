"""The collector (sa_depot.collector.collect): finishes journaled removals, sweeps unreferenced
files older than the grace period, and never touches a referenced or a young file."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.collector import CollectorError, collect, load_metadata, parse_duration
from sa_depot.database import journal
from sa_depot.exceptions import ConfigurationError, StorageNotFound
from sa_depot.fields import lifecycle
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager

LATER = datetime.now(timezone.utc) + timedelta(days=2)  # every file is older than the grace


@dataclass
class App:
    engine: sa.Engine
    Base: type[DeclarativeBase]
    Doc: Any
    storage: LocalFileStorage

    def stored(self, name: str = "default") -> set[str]:
        return {f"{name}/{i}" for i in DepotManager.get(name).list()}

    def add(self, content: bytes, name: str | None = None) -> Any:
        with Session(self.engine, expire_on_commit=False) as session:
            doc = self.Doc(name=name or uuid.uuid4().hex[:10], content=content)
            session.add(doc)
            session.commit()
            return doc.content

    def raw(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql.format(table=self.Doc.__tablename__)), params)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    storage = DepotManager.configure(
        "default", {"depot.storage_path": str(tmp_path / "files"), "depot.fsync": "false"}
    )
    assert isinstance(storage, LocalFileStorage)

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = f"collector_docs_{uuid.uuid4().hex[:8]}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(50))
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    engine = sa.create_engine(db_url)
    schema.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    yield App(engine, Base, Doc, storage)
    Base.metadata.drop_all(engine)
    schema.metadata.drop_all(engine)
    engine.dispose()
    Base.registry.dispose()
    lifecycle.uninstall()


def orphan(content: bytes = b"orphan") -> str:
    """A stored file no row references."""
    return f"default/{DepotManager.get('default').create(content)}"


def test_sweep_removes_unreferenced_files_and_keeps_referenced_ones(app: App) -> None:
    kept = [app.add(b"one").path, app.add(b"two").path]
    lost = [orphan(), orphan()]
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert sorted(report.orphans) == sorted(lost)
    assert app.stored() == set(kept)
    assert report.referenced == 2 and report.rows_scanned == 2 and report.stored == 4
    assert report.missing == [] and report.ok
    assert report.columns == [f"{app.Doc.__tablename__}.content"]


def test_files_younger_than_the_grace_period_are_never_swept(app: App) -> None:
    young = orphan()
    report = collect(app.engine, app.Base.metadata)  # default grace: 24 hours
    assert report.too_young == [young] and report.orphans == []
    assert app.stored() == {young}
    report = collect(app.engine, app.Base.metadata, grace=timedelta(hours=1))
    assert report.too_young == [young] and app.stored() == {young}
    soon = datetime.now(timezone.utc) + timedelta(hours=23)
    assert collect(app.engine, app.Base.metadata, now=soon).too_young == [young]
    past_grace = datetime.now(timezone.utc) + timedelta(hours=25)
    assert collect(app.engine, app.Base.metadata, now=past_grace).orphans == [young]
    assert app.stored() == set()


def test_zero_grace_sweeps_at_once(app: App) -> None:
    lost = orphan()
    assert collect(app.engine, [app.Base.metadata], grace=timedelta(0)).orphans == [lost]
    assert app.stored() == set()


def test_dry_run_reports_and_changes_nothing(app: App) -> None:
    doc_path = app.add(b"kept").path
    lost = orphan()
    with app.engine.begin() as conn:
        journal.record_removals(conn, [journaled := orphan(b"journaled")])
    before = app.stored()
    report = collect(app.engine, app.Base.metadata, now=LATER, dry_run=True)
    assert report.dry_run
    assert report.journal_finished == [journaled]
    assert sorted(report.orphans) == sorted([lost, journaled])
    assert app.stored() == before == {doc_path, lost, journaled}
    assert [p.path for p in journal.pending(app.engine)] == [journaled]
    assert "would remove" in report.summary()


def test_the_journal_is_finished_without_waiting_for_the_grace_period(app: App) -> None:
    """A crash between commit and removals leaves journal rows: their files go at once."""
    doc_path = app.add(b"kept").path
    journaled = orphan(b"replaced")
    with app.engine.begin() as conn:
        journal.record_removals(conn, [journaled])
    report = collect(app.engine, app.Base.metadata)  # default grace; the file is brand new
    assert report.journal_finished == [journaled]
    assert app.stored() == {doc_path}
    assert journal.pending(app.engine) == []


def test_a_journaled_file_that_a_row_references_is_kept(app: App) -> None:
    """Raw SQL copied the descriptor to a second row: the sharing rule keeps the file."""
    shared = app.add(b"shared", name="a")
    app.raw("INSERT INTO {table} (name, content) SELECT 'b', content FROM {table}")
    app.raw("DELETE FROM {table} WHERE name = 'a'")
    with app.engine.begin() as conn:
        journal.record_removals(conn, list(shared.files))
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert report.journal_kept == [shared.path] and report.journal_finished == []
    assert report.orphans == []
    assert app.stored() == {shared.path}
    assert journal.pending(app.engine) == []  # the row is done with; the file is the row's


def test_a_file_shared_by_two_rows_goes_only_when_neither_references_it(app: App) -> None:
    shared = app.add(b"shared", name="a")
    app.raw("INSERT INTO {table} (name, content) SELECT 'b', content FROM {table}")
    app.raw("DELETE FROM {table} WHERE name = 'a'")
    assert collect(app.engine, app.Base.metadata, now=LATER).orphans == []
    with Session(app.engine) as session:
        (b,) = session.scalars(sa.select(app.Doc)).all()
        assert b.content.path == shared.path
        with b.content.file as stored:
            assert stored.read() == b"shared"
    app.raw("DELETE FROM {table}")
    assert collect(app.engine, app.Base.metadata, now=LATER).orphans == [shared.path]
    assert app.stored() == set()


def test_an_orm_replace_leaves_nothing_to_collect(app: App) -> None:
    with Session(app.engine) as session:
        doc = app.Doc(name="a", content=b"v1")
        session.add(doc)
        session.commit()
        doc.content = b"v2"
        session.commit()
        current = doc.content.path
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert report.orphans == [] and report.journal_finished == [] and report.missing == []
    assert app.stored() == {current}


def test_derivatives_and_filedepot_descriptors_count_as_references(app: App) -> None:
    """``files`` lists derivatives; filedepot kept thumbnails under ``*_path`` keys and
    left ``files`` out; columns converted from plain paths hold ``'storage/id'`` text."""
    original, thumb, derivative, plain = orphan(), orphan(), orphan(), orphan()
    lost = orphan()
    filedepot = {
        "file_id": original.split("/")[1],
        "path": original,
        "thumb_64x64_id": thumb.split("/")[1],
        "thumb_64x64_path": thumb,
        "thumb_64x64_url": f"/depot/{thumb}",
        "_public_url": None,
    }
    # files also holds a path that is no well-formed id (so it names no file)
    ours = dict(filedepot, path=derivative, files=[derivative, lost + "/.not-this"])
    table = app.Doc.__table__
    with app.engine.begin() as conn:
        # The column type would turn the values into descriptors: write them as stored text.
        for name, value in [("fd", filedepot), ("ours", ours)]:
            conn.execute(table.insert().values(name=name, content=value))
        conn.execute(
            sa.text(f"INSERT INTO {table.name} (name, content) VALUES ('plain', :v)"),
            {"v": json.dumps(plain) if app.engine.dialect.name != "sqlite" else plain},
        )
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert report.orphans == [lost]
    assert app.stored() == {original, thumb, derivative, plain}


def test_missing_files_are_reported(app: App) -> None:
    doc = app.add(b"soon gone")
    DepotManager.get("default").delete(doc.file_id)
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert report.missing == [doc.path]


def test_leftovers_of_interrupted_writes_are_removed(app: App) -> None:
    kept = app.add(b"kept").path
    file_id = str(uuid.uuid4())
    shard = Path(app.storage.storage_path, file_id[:2], file_id[2:4])
    shard.mkdir(parents=True, exist_ok=True)
    leftover = shard / f"{file_id}.0123456789abcdef"
    leftover.write_bytes(b"half an upload")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    young = collect(app.engine, app.Base.metadata)  # an hour old: inside the 24 h grace
    assert young.incomplete == [] and leftover.exists()
    report = collect(app.engine, app.Base.metadata, grace=timedelta(minutes=30))
    assert report.incomplete == [str(leftover)] and not leftover.exists()
    assert app.stored() == {kept}


def test_aliases_and_two_names_on_one_directory_share_references(app: App) -> None:
    DepotManager.alias("legacy", "default")
    DepotManager.configure(
        "again", {"depot.storage_path": app.storage.storage_path, "depot.fsync": "false"}
    )
    via_alias = orphan(b"via alias")
    via_other_name = orphan(b"via other name")
    table = app.Doc.__table__
    with app.engine.begin() as conn:
        for path in [via_alias.replace("default/", "legacy/"), via_other_name]:
            conn.execute(table.insert().values(name="x", content={"path": path}))
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert report.orphans == [] and report.ok
    assert len(DepotManager.get("again").list()) == 2


def test_storages_no_column_writes_to_are_left_alone(app: App, tmp_path: Path) -> None:
    """A backup (or another application's storage) holds files no row of this database
    references: the collector sweeps it only when asked by name."""
    backup = DepotManager.configure("backup", {"depot.storage_path": str(tmp_path / "backup")})
    copy = f"backup/{backup.create(b'a copy of a referenced file')}"
    lost = orphan()
    report = collect(app.engine, app.Base.metadata, now=LATER)
    assert report.storages == ["default"] and report.not_swept == ["backup"]
    assert report.orphans == [lost]
    assert backup.exists(copy.split("/")[1])
    assert "not swept: backup" in report.summary()
    named = collect(app.engine, app.Base.metadata, ["backup"], now=LATER, dry_run=True)
    assert named.storages == ["backup"] and named.orphans == [copy]


def test_a_column_writing_to_an_alias_sweeps_its_storage(tmp_path: Path, db_url: str) -> None:
    from sa_depot.collector import written_storages

    DepotManager.configure("main", {"depot.storage_path": str(tmp_path / "main")})
    DepotManager.configure("media", {"depot.storage_path": str(tmp_path / "media")})
    DepotManager.alias("avatars", "media")
    table = sa.Table(
        "t", sa.MetaData(), sa.Column("a", UploadedFileField(upload_storage="avatars"))
    )
    other = sa.Table("u", sa.MetaData(), sa.Column("b", UploadedFileField()))
    assert written_storages([table.c.a]) == ["media"]
    assert written_storages([table.c.a, other.c.b]) == ["media", "main"]
    lifecycle.uninstall()


def test_storages_limits_the_sweep(app: App, tmp_path: Path) -> None:
    DepotManager.configure("other", {"depot.storage_path": str(tmp_path / "other")})
    in_default, in_other = orphan(), f"other/{DepotManager.get('other').create(b'x')}"
    report = collect(app.engine, app.Base.metadata, ["other"], now=LATER)
    assert report.orphans == [in_other]
    assert app.stored() == {in_default}
    with pytest.raises(StorageNotFound, match="nowhere"):
        collect(app.engine, app.Base.metadata, ["nowhere"])


def test_refuses_to_sweep_without_file_columns_or_tables(app: App) -> None:
    lost = orphan()
    with pytest.raises(CollectorError, match="no UploadedFileField column"):
        collect(app.engine, schema.metadata, now=LATER)
    other = sa.MetaData()
    sa.Table(
        "never_created",
        other,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("f", UploadedFileField()),
    )
    with pytest.raises(CollectorError, match="never_created.*does not exist"):
        collect(app.engine, other, now=LATER)
    assert app.stored() == {lost}
    with app.engine.begin() as conn:
        journal.record_removals(conn, [lost])
    report = collect(app.engine, [], sweep=False)
    assert report.journal_finished == [lost] and app.stored() == set()


def test_works_inside_a_callers_connection(app: App) -> None:
    lost = orphan()
    with app.engine.connect() as conn:
        report = collect(conn, app.Base.metadata, now=LATER)
    assert report.orphans == [lost]


def test_load_metadata_and_parse_duration() -> None:
    tables = load_metadata("sa_depot.schema:metadata")
    assert "sa_depot_pending_removals" in [t.name for t in tables]
    with pytest.raises(ConfigurationError, match="package.module:attribute"):
        load_metadata("no_colon")
    with pytest.raises(ConfigurationError, match="cannot import"):
        load_metadata("no_such_module_xyz:metadata")
    with pytest.raises(ConfigurationError, match="'nope' not found"):
        load_metadata("sa_depot.schema:nope")
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("2d") == timedelta(days=2)
    with pytest.raises(ConfigurationError, match="not a duration"):
        parse_duration("soon")
