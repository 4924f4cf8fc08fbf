"""move_files: every file of a column moves to another storage, in batches, on every database;
an interrupted move (an exception, a process killed before or after a commit) resumes, a second
run changes nothing, and nothing is lost, left behind or duplicated."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sa_depot.alembic
import sa_depot.migrate
from sa_depot.database import journal
from sa_depot.exceptions import ConfigurationError, StorageNotFound
from sa_depot.fields.filters.thumbnails import WithThumbnailFilter
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.manager import DepotManager
from sa_depot.migrate import MigrationError, MoveProgress, move_files
from tests.alembic.conftest import Storages, png, sha256, unique

ROOT = Path(__file__).resolve().parents[2]
ROWS = 7
BATCH = 3


class Stop(Exception):
    pass


@dataclass
class Gallery:
    """A table of pictures (each with a thumbnail) stored in ``old``, and what they hold."""

    engine: sa.Engine
    model: Any
    registry: Any
    contents: dict[int, bytes]

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    def values(self) -> dict[int, UploadedFile | None]:
        with Session(self.engine) as session:
            return {p.id: p.file for p in session.scalars(sa.select(self.model))}

    def storages_of(self) -> dict[int, set[str]]:
        return {
            i: {path.split("/", 1)[0] for path in value.files}
            for i, value in self.values().items()
            if value is not None
        }

    def referenced(self) -> set[str]:
        return {p for value in self.values().values() if value is not None for p in value.files}

    def assert_all_moved(self, storages: Storages) -> None:
        """Every row points at ``new``, reads back byte-identical, and ``new`` holds exactly the
        files the rows reference; ``old`` and the journal are empty."""
        values = self.values()
        for i, data in self.contents.items():
            value = values[i]
            assert value is not None
            assert value.depot_name == "new" and value.path == f"new/{value.file_id}"
            assert {p.split("/", 1)[0] for p in value.files} == {"new"}
            assert value.checksum == sha256(data)
            with value.file as stored:
                assert stored.read() == data
            with DepotManager.get_file(value["thumb_8x8_path"]) as stored:
                assert stored.read(8) == b"\x89PNG\r\n\x1a\n"
        assert storages.paths("old") == set()
        assert storages.paths("new") == self.referenced()
        assert len(storages.paths("new")) == 2 * len(self.contents)
        assert journal.pending(self.engine) == []


@pytest.fixture
def gallery(engine: sa.Engine, storages: Storages) -> Iterator[Gallery]:
    sa_depot.alembic.upgrade(engine)  # the removal journal

    class Base(DeclarativeBase):
        pass

    class Picture(Base):
        __tablename__ = unique("pictures")
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        file: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(filters=[WithThumbnailFilter((8, 8), "PNG")], upload_storage="old")
        )

    Base.metadata.create_all(engine)
    contents = {i: png(i) for i in range(1, ROWS + 1)}
    with Session(engine) as session:
        session.add_all(Picture(id=i, file=data) for i, data in contents.items())
        session.add(Picture(id=ROWS + 1, file=None))
        session.commit()
    yield Gallery(engine, Picture, Base.registry, contents)
    Base.registry.dispose()


def test_every_file_moves_and_a_second_run_does_nothing(
    gallery: Gallery, storages: Storages
) -> None:
    assert len(storages.paths("old")) == 2 * ROWS
    seen: list[MoveProgress] = []

    report = move_files(
        gallery.engine,
        gallery.table,
        "file",
        source="old",
        target="new",
        batch_size=BATCH,
        progress=seen.append,
    )

    gallery.assert_all_moved(storages)
    assert (report.total_rows, report.rows_scanned, report.rows_moved) == (ROWS, ROWS, ROWS)
    assert (report.files_copied, report.files_removed, report.removals_pending) == (14, 14, 0)
    assert report.bytes_copied == sum(
        DepotManager.get("new").info(p.split("/", 1)[1]).content_length or 0
        for p in storages.paths("new")
    )
    assert [p.rows_moved for p in seen] == [3, 6, 7] and seen[-1] == report

    again = move_files(gallery.engine, gallery.table, "file", source="old", target="new")
    assert (again.rows_scanned, again.rows_moved, again.files_copied) == (ROWS, 0, 0)
    gallery.assert_all_moved(storages)


def test_a_move_stopped_by_the_progress_callback_resumes(
    gallery: Gallery, storages: Storages
) -> None:
    def stop_after_first_batch(progress: MoveProgress) -> None:
        raise Stop

    with pytest.raises(Stop):
        move_files(
            gallery.engine,
            gallery.table,
            "file",
            source="old",
            target="new",
            batch_size=BATCH,
            progress=stop_after_first_batch,
        )

    where = gallery.storages_of()
    assert [i for i in sorted(where) if where[i] == {"new"}] == [1, 2, 3]
    assert [i for i in sorted(where) if where[i] == {"old"}] == [4, 5, 6, 7]
    assert storages.paths("old") == {p for p in gallery.referenced() if p.startswith("old/")}
    assert journal.pending(gallery.engine) == []  # the first batch's old files were removed

    report = move_files(
        gallery.engine, gallery.table, "file", source="old", target="new", batch_size=BATCH
    )

    assert (report.rows_moved, report.files_copied, report.files_removed) == (4, 8, 8)
    gallery.assert_all_moved(storages)


@pytest.mark.parametrize("moment", ["before-commit", "after-commit"])
def test_a_move_killed_at_a_dangerous_moment_loses_nothing_and_resumes(
    gallery: Gallery, storages: Storages, tmp_path: Path, moment: str
) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.alembic.move_child",
            gallery.engine.url.render_as_string(hide_password=False),
            gallery.table,
            str(tmp_path),
            moment,
            str(BATCH),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stdout + child.stderr

    # Whatever the moment, every row points at a file that exists and reads back intact.
    where = gallery.storages_of()
    for i, value in gallery.values().items():
        if value is not None:
            with value.file as stored:
                assert stored.read() == gallery.contents[i]
    assert [i for i in sorted(where) if where[i] == {"new"}] == (
        [1, 2, 3] if moment == "before-commit" else [1, 2, 3, 4, 5, 6]
    )
    values = gallery.values()
    second_batch = {
        f"{s}/{p.split('/', 1)[1]}"
        for s in ("old", "new")
        for i in (4, 5, 6)
        for p in (values[i] or {"files": []})["files"]
    }
    if moment == "before-commit":
        # The second batch's copies are in `new` (same ids), referenced by nobody yet.
        assert {p for p in second_batch if p.startswith("new/")} <= storages.paths("new")
    else:
        # Its rows committed; its old files are still there, listed in the journal.
        old_files = {p for p in second_batch if p.startswith("old/")}
        assert old_files <= storages.paths("old")
        assert {p.path for p in journal.pending(gallery.engine)} == old_files

    report = move_files(
        gallery.engine, gallery.table, "file", source="old", target="new", batch_size=BATCH
    )

    if moment == "before-commit":
        assert report.files_copied == 2  # only row 7's: the second batch's copies were reused
    else:
        assert journal.finish_pending_removals(gallery.engine).removed  # the collector's pass
    gallery.assert_all_moved(storages)


def test_inside_the_callers_transaction_old_files_wait_for_its_commit(
    gallery: Gallery, storages: Storages
) -> None:
    before = gallery.values()
    with gallery.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))  # as Alembic's op.get_bind(): in a transaction
        report = move_files(connection, gallery.table, "file", source="old", target="new")
        assert (report.rows_moved, report.files_removed, report.removals_pending) == (7, 0, 14)
        connection.rollback()

    # Rolled back: the rows and the old files are as they were, the journal rows are gone.
    assert {i: dict(v or {}) for i, v in gallery.values().items()} == {
        i: dict(v or {}) for i, v in before.items()
    }
    assert storages.paths("old") == gallery.referenced()
    assert journal.pending(gallery.engine) == []

    with gallery.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        report = move_files(connection, gallery.table, "file", source="old", target="new")
        connection.commit()
    assert report.files_copied == 0  # the copies made before the rollback were reused
    assert len(storages.paths("old")) == 14  # still there, journaled, until someone finishes
    assert len(journal.pending(gallery.engine)) == 14

    finished = journal.finish_pending_removals(gallery.engine)

    assert len(finished.removed) == 14
    gallery.assert_all_moved(storages)


def test_a_file_that_does_not_match_its_checksum_is_not_moved(
    gallery: Gallery, storages: Storages
) -> None:
    damaged = gallery.values()[2]
    assert damaged is not None
    storages.old.replace(damaged.file_id, b"bit rot")  # the row still records the old checksum

    with pytest.raises(MigrationError, match=rf"row id=2: the copy of old/{damaged.file_id}"):
        move_files(gallery.engine, gallery.table, "file", source="old", target="new")

    assert gallery.storages_of()[2] == {"old"}  # left as it was, for someone to look at
    assert f"new/{damaged.file_id}" not in storages.paths("new")  # no bad copy left
    assert gallery.storages_of()[1] == {"old"}  # the failing batch changed nothing


@pytest.mark.parametrize("moment", ["between its files", "after its files"])
def test_a_row_the_application_replaces_during_the_move_keeps_the_new_value(
    gallery: Gallery, storages: Storages, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """Between its files: the thumbnail to copy is gone (the application removed it with the
    row's old value). After its files: the row's update finds another value. Either way the
    row keeps the application's value and the copies made for the old one are removed."""
    copy = sa_depot.migrate._copy_verified
    old_value = gallery.values()[2]
    assert old_value is not None
    trigger = old_value.files[0 if moment == "between its files" else -1]
    replaced: list[UploadedFile] = []

    def copy_while_the_application_replaces_row_2(where: str, path: str, *args: Any) -> Any:
        copied = copy(where, path, *args)
        if path == trigger and not replaced:
            with Session(gallery.engine) as session:  # another writer, through the ORM
                picture: Any = session.get(gallery.model, 2)
                picture.file = png(99)
                session.commit()
                replaced.append(picture.file)
        return copied

    monkeypatch.setattr(
        sa_depot.migrate, "_copy_verified", copy_while_the_application_replaces_row_2
    )

    report = move_files(gallery.engine, gallery.table, "file", source="old", target="new")

    assert report.rows_moved == ROWS - 1
    value = gallery.values()[2]
    assert value is not None and value.path == replaced[0].path
    with value.file as stored:
        assert stored.read() == png(99)
    # The copies of row 2's first value were removed: nobody references them.
    assert storages.paths("new") == {p for p in gallery.referenced() if p.startswith("new/")}
    assert storages.paths("old") == set(value.files)
    assert journal.pending(gallery.engine) == []

    monkeypatch.setattr(sa_depot.migrate, "_copy_verified", copy)
    again = move_files(gallery.engine, gallery.table, "file", source="old", target="new")
    assert again.rows_moved == 1
    assert storages.paths("old") == set()
    assert storages.paths("new") == gallery.referenced()


def test_a_lost_file_stops_the_move_and_names_the_row(gallery: Gallery, storages: Storages) -> None:
    lost = gallery.values()[5]
    assert lost is not None
    storages.old.delete(lost.file_id)

    with pytest.raises(MigrationError, match=rf"row id=5: cannot copy old/{lost.file_id}"):
        move_files(gallery.engine, gallery.table, "file", source="old", target="new", batch_size=3)

    assert [sorted(s) for _, s in sorted(gallery.storages_of().items())] == (
        [["new"]] * 3 + [["old"]] * 4
    )


class PrefixedMemoryStorage(MemoryFileStorage):
    """A storage whose ids are not UUIDs: files moved into it get new ids."""

    id_format = "'m-' followed by a UUID"

    def new_file_id(self) -> str:
        return f"m-{uuid.uuid4()}"

    def is_valid_id(self, file_id: str) -> bool:
        return re.fullmatch(r"m-[0-9a-f-]{36}", file_id) is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a storage matter
def test_files_moved_to_a_storage_with_other_ids_get_new_ids_everywhere(
    gallery: Gallery, storages: Storages
) -> None:
    DepotManager.configure("prefixed", {"depot.backend": f"{__name__}.PrefixedMemoryStorage"})
    before = gallery.values()

    move_files(gallery.engine, gallery.table, "file", source="old", target="prefixed")

    for i, value in gallery.values().items():
        if value is None:
            continue
        old = before[i]
        assert old is not None
        assert value.file_id.startswith("m-") and value.path == f"prefixed/{value.file_id}"
        assert value["thumb_8x8_id"].startswith("m-")
        assert value["thumb_8x8_path"] == f"prefixed/{value['thumb_8x8_id']}"
        assert list(value.files) == [value.path, value["thumb_8x8_path"]]
        assert (value.checksum, value.filename, value.uploaded_at) == (
            old.checksum,
            old.filename,
            old.uploaded_at,
        )
        with value.file as stored:
            assert stored.read() == gallery.contents[i]
    assert storages.paths("old") == set()


def test_refusals_name_the_problem(gallery: Gallery, storages: Storages) -> None:
    with pytest.raises(ConfigurationError, match="are the same storage"):
        move_files(gallery.engine, gallery.table, "file", source="old", target="old")
    with pytest.raises(StorageNotFound, match="no storage named 'elsewhere'"):
        move_files(gallery.engine, gallery.table, "file", source="old", target="elsewhere")

    plain = sa.Table(
        unique("plain"),
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("file", sa.Text),
    )
    plain.create(gallery.engine)
    with gallery.engine.begin() as connection:
        connection.execute(plain.insert().values(id=1, file=f"old/{uuid.uuid4()}"))
    with pytest.raises(MigrationError, match="plain path .* convert the column first"):
        move_files(gallery.engine, plain.name, "file", source="old", target="new")

    sa_depot.alembic.downgrade(gallery.engine, "base")  # no sa_depot tables at all
    fresh = sa.create_engine(gallery.engine.url)
    try:  # they are created on first need, and the move works
        move_files(fresh, gallery.table, "file", source="old", target="new")
        assert "sa_depot_files" in sa.inspect(fresh).get_table_names()
    finally:
        fresh.dispose()
    assert storages.paths("new")
