"""convert_column: plain paths and filedepot descriptors become complete UploadedFileField
descriptors, on every database, from Python and inside an Alembic migration."""

from __future__ import annotations

import io
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import FileStorage
from sa_depot.migrate import ConversionProgress, MigrationError, convert_column
from tests.alembic.conftest import Storages, sha256, unique


def legacy_table(
    engine: sa.Engine, column_type: sa.types.TypeEngine[Any] | None = None
) -> sa.Table:
    table = sa.Table(
        unique("legacy"),
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("file", column_type if column_type is not None else sa.Text()),
    )
    table.create(engine)
    return table


def insert(engine: sa.Engine, table: sa.Table, values: dict[int, str | None]) -> None:
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": k, "file": v} for k, v in values.items()])


def raw_values(engine: sa.Engine, table: sa.Table) -> dict[int, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.id, sa.cast(table.c.file, sa.Text)))
        return {row[0]: row[1] for row in rows}


def descriptors(engine: sa.Engine, table: sa.Table) -> dict[int, UploadedFile | None]:
    """The column read as an application reads it: through UploadedFileField."""
    typed = sa.Table(
        table.name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("file", UploadedFileField()),
    )
    stmt = sa.select(typed).where(sa.cast(typed.c.file, sa.Text) != "")
    with engine.connect() as connection:
        return {row.id: row.file for row in connection.execute(stmt)}


def filedepot_file(storage: FileStorage, root: Path, data: bytes, filename: str) -> str:
    """A file as filedepot's LocalFileStorage left it: no length, no checksum."""
    file_id = str(uuid.uuid1())
    directory = root / file_id
    directory.mkdir(parents=True)
    (directory / "file").write_bytes(data)
    (directory / "metadata.json").write_text(
        json.dumps(
            {
                "filename": filename,
                "content_type": "text/plain",
                "last_modified": "2017-03-04 05:06:07",
            }
        )
    )
    assert storage.exists(file_id)
    return file_id


def test_paths_and_filedepot_descriptors_become_complete_descriptors(
    engine: sa.Engine, storages: Storages, tmp_path: Path
) -> None:
    old = storages.old
    plain = old.create(b"plain path content", filename="plain.txt")
    bare = old.create(b"%PDF-1.4 bare id", filename="bare.pdf", content_type="application/pdf")
    legacy = filedepot_file(old, tmp_path / "old", b"written by filedepot", "legacy.txt")
    thumb = old.create(b"thumbnail bytes", filename="thumb.png")
    filedepot_descriptor = {
        "file_id": legacy,
        "path": f"old/{legacy}",
        "filename": "legacy.txt",
        "content_type": "text/plain",
        "uploaded_at": "2017-03-04 05:06:07",
        "_public_url": None,
        "thumb_8x8_id": thumb,
        "thumb_8x8_path": f"old/{thumb}",
        "thumb_8x8_url": f"/depot/old/{thumb}",
    }
    done = old.create(b"already complete", filename="done.txt")
    complete = {
        "file_id": done,
        "path": f"old/{done}",
        "depot_name": "old",
        "filename": "done.txt",
        "content_type": "text/plain",
        "content_length": 16,
        "checksum": sha256(b"already complete"),
        "uploaded_at": "2024-01-02 03:04:05",
        "_public_url": None,
        "files": [f"old/{done}"],
    }
    table = legacy_table(engine)
    insert(
        engine,
        table,
        {
            1: f"old/{plain}",
            2: bare,
            3: json.dumps(filedepot_descriptor),
            4: json.dumps(complete),
            5: None,
            6: "",
        },
    )
    seen: list[ConversionProgress] = []

    report = convert_column(
        engine, table.name, "file", storage="old", batch_size=2, progress=seen.append
    )

    assert (report.total_rows, report.rows_scanned) == (5, 5)
    assert (report.rows_converted, report.rows_unchanged, report.batches) == (3, 2, 3)
    assert [p.rows_scanned for p in seen] == [2, 4, 5]
    values = descriptors(engine, table)
    first = values[1]
    assert first is not None
    assert (first.path, first.file_id, first.depot_name) == (f"old/{plain}", plain, "old")
    assert (first.filename, first.content_type) == ("plain.txt", "text/plain")
    assert (first.content_length, first.checksum) == (18, sha256(b"plain path content"))
    assert first.files == (f"old/{plain}",)
    with first.file as stored:
        assert stored.read() == b"plain path content"
    second = values[2]
    assert second is not None and second.path == f"old/{bare}"
    assert (second.filename, second.content_type) == ("bare.pdf", "application/pdf")
    third = values[3]
    assert third is not None
    assert third.checksum == sha256(b"written by filedepot")  # computed: filedepot kept none
    assert third.content_length == len(b"written by filedepot")
    assert third.uploaded_at.isoformat() == "2017-03-04T05:06:07+00:00"
    assert third.files == (f"old/{legacy}", f"old/{thumb}")  # the thumbnail goes with it
    assert third["thumb_8x8_url"] == f"/depot/old/{thumb}"
    assert json.loads(raw_values(engine, table)[4] or "") == complete
    assert 5 not in values and raw_values(engine, table)[5] is None
    assert raw_values(engine, table)[6] == ""

    before = raw_values(engine, table)
    again = convert_column(engine, table, "file", storage="old")
    assert (again.rows_converted, again.rows_unchanged) == (0, 5)
    assert raw_values(engine, table) == before


def test_a_missing_file_stops_the_run_and_names_the_row(
    engine: sa.Engine, storages: Storages
) -> None:
    kept = storages.old.create(b"here")
    missing = str(uuid.uuid4())
    table = legacy_table(engine)
    insert(
        engine, table, {1: f"old/{kept}", 2: f"old/{kept}", 3: f"old/{kept}", 4: f"old/{missing}"}
    )

    with pytest.raises(MigrationError, match=rf"{table.name}\.file, row id=4: .*{missing}"):
        convert_column(engine, table.name, "file", batch_size=2)

    values = raw_values(engine, table)
    assert json.loads(values[1] or "")["checksum"] == sha256(b"here")  # first batch committed
    assert values[3] == f"old/{kept}" and values[4] == f"old/{missing}"  # failing batch: untouched


def test_a_recorded_checksum_that_does_not_match_the_file_is_refused(
    engine: sa.Engine, storages: Storages
) -> None:
    file_id = storages.old.create(b"the real content")
    table = legacy_table(engine)
    insert(engine, table, {1: json.dumps({"path": f"old/{file_id}", "checksum": sha256(b"other")})})

    with pytest.raises(MigrationError, match="does not match the checksum"):
        convert_column(engine, table.name, "file")


def test_bare_ids_need_a_storage(engine: sa.Engine, storages: Storages) -> None:
    table = legacy_table(engine)
    insert(engine, table, {1: storages.old.create(b"x")})
    with pytest.raises(MigrationError, match="pass storage='<name>'"):
        convert_column(engine, table.name, "file")


def test_a_column_too_narrow_for_descriptors_is_refused_before_anything_changes(
    engine: sa.Engine, storages: Storages
) -> None:
    file_id = storages.old.create(b"x", filename="x.txt")
    table = legacy_table(engine, sa.String(100))
    insert(engine, table, {1: f"old/{file_id}"})

    with pytest.raises(MigrationError, match=r"at most 100.*widen it first"):
        convert_column(engine, table.name, "file")
    assert raw_values(engine, table) == {1: f"old/{file_id}"}


def test_unknown_table_column_and_missing_primary_key_are_named(
    engine: sa.Engine, storages: Storages
) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        convert_column(engine, unique("nothing"), "file")
    table = legacy_table(engine)
    with pytest.raises(MigrationError, match="has no column 'nope'; its columns: id, file"):
        convert_column(engine, table.name, "nope")
    keyless = sa.Table(unique("keyless"), sa.MetaData(), sa.Column("file", sa.Text))
    keyless.create(engine)
    with pytest.raises(MigrationError, match="has no primary key"):
        convert_column(engine, keyless.name, "file")


MIGRATION_ENV = """
from alembic import context

context.configure(connection=context.config.attributes["connection"], target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
"""

CONVERT_MIGRATION = '''
"""filedepot paths to sa_depot descriptors"""
import sqlalchemy as sa
from alembic import op

import sa_depot.fields.sqlalchemy
from sa_depot.migrate import convert_column

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table({table!r}) as batch:  # batch: SQLite rebuilds the table
        batch.alter_column("file", type_=sa.Text(), existing_type=sa.String(255))
    convert_column(op.get_bind(), {table!r}, "file")
    with op.batch_alter_table({table!r}) as batch:
        batch.alter_column(
            "file",
            type_=sa_depot.fields.sqlalchemy.UploadedFileField(),
            existing_type=sa.Text(),
            postgresql_using="file::jsonb",
        )


def downgrade() -> None:
    pass
'''


def test_inside_an_alembic_migration_with_the_column_made_native_json(
    engine: sa.Engine, storages: Storages, tmp_path: Path
) -> None:
    contents = {i: f"file {i}".encode() for i in range(1, 6)}
    ids = {i: storages.old.create(data, filename=f"f{i}.txt") for i, data in contents.items()}
    table = legacy_table(engine, sa.String(255))
    insert(engine, table, {i: f"old/{file_id}" for i, file_id in ids.items()})
    (tmp_path / "env" / "versions").mkdir(parents=True)
    (tmp_path / "env" / "env.py").write_text(MIGRATION_ENV)
    (tmp_path / "env" / "versions" / "0001_convert.py").write_text(
        textwrap.dedent(CONVERT_MIGRATION.format(table=table.name))
    )
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(tmp_path / "env"))
    config.set_main_option("path_separator", "os")

    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()

    values = descriptors(engine, table)
    for i, data in contents.items():
        value = values[i]
        assert value is not None and value.checksum == sha256(data)
        assert value.filename == f"f{i}.txt"
        with value.file as stored:
            assert stored.read() == data
    column_type = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table.name)}["file"]
    if engine.dialect.name == "postgresql":
        assert type(column_type).__name__ == "JSONB"
