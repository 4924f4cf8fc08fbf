"""UploadedFileField: how the descriptor is stored on each database, filedepot's rows, the
mapping styles, and Core statements."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, registry

from sa_depot.exceptions import UnsupportedContent
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.orm.records import remove_abandoned
from tests.orm.conftest import Depot, Models, unique


def test_descriptor_is_native_json_where_the_database_has_it(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"x")
        session.add_all([doc, models.Document(name="empty", content=None)])
        session.commit()
        path = doc.content.path  # type: ignore[union-attr]
    table = models.Document.__tablename__
    with engine.connect() as conn:
        nulls = f"SELECT COUNT(*) FROM {table} WHERE content IS NULL"
        assert conn.exec_driver_sql(nulls).scalar() == 1  # None is SQL NULL, not JSON null
        if engine.dialect.name == "postgresql":
            sql = f"SELECT pg_typeof(content)::text, content->>'path' FROM {table} WHERE name='a'"
            assert tuple(conn.exec_driver_sql(sql).one()) == ("jsonb", path)
        elif engine.dialect.name == "mysql":
            created = conn.exec_driver_sql(f"SHOW CREATE TABLE {table}").one()[1]
            assert "json_valid" in created.lower()
            sql = f"SELECT JSON_VALUE(content, '$.path') FROM {table} WHERE name='a'"
            assert conn.exec_driver_sql(sql).scalar() == path
        else:
            sql = f"SELECT typeof(content), content FROM {table} WHERE name='a'"
            kind, raw = conn.exec_driver_sql(sql).one()
            assert kind == "text" and json.loads(raw)["path"] == path


@pytest.fixture
def legacy_table(engine: sa.Engine) -> Iterator[sa.Table]:
    """A table as filedepot created it: the descriptor as JSON text in a VARCHAR."""
    metadata = sa.MetaData()
    table = sa.Table(
        unique("legacy"),
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("content", sa.Unicode(4096)),
    )
    metadata.create_all(engine)
    yield table
    metadata.drop_all(engine)


def test_rows_written_by_filedepot_load_and_can_be_replaced(
    engine: sa.Engine, legacy_table: sa.Table, depot: Depot
) -> None:
    file_id = depot.storage.create(b"legacy bytes", "old.txt", "text/plain")
    descriptor = {  # filedepot's keys: no depot_name, content_length nor checksum
        "file_id": file_id,
        "path": f"default/{file_id}",
        "filename": "old.txt",
        "content_type": "text/plain",
        "uploaded_at": "2020-01-02 03:04:05",
        "_public_url": None,
        "files": [f"default/{file_id}"],
    }
    with engine.begin() as conn:
        conn.execute(legacy_table.insert().values(id=1, content=json.dumps(descriptor)))

    class Base(DeclarativeBase):
        pass

    class Legacy(Base):
        __tablename__ = legacy_table.name
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    try:
        with Session(engine) as session:
            row = session.get(Legacy, 1)
            assert row is not None and row.content is not None
            content = row.content
            assert content.depot_name == "default"
            assert content.files == (f"default/{file_id}",)
            assert content.filename == "old.txt"
            assert content.content_length is None and content.checksum is None
            assert content.uploaded_at.isoformat() == "2020-01-02T03:04:05+00:00"
            assert depot.read(content) == b"legacy bytes"
            # Not adopted: the file columns are checked, and no other row references it.
            row.content = b"new bytes"
            session.commit()
            session.expire_all()
            assert depot.read(row.content) == b"new bytes"
            assert depot.stored() == set(row.content.files)
    finally:
        Base.registry.dispose()


def test_imperative_mapping(engine: sa.Engine, depot: Depot) -> None:
    mapper_registry = registry()
    table = sa.Table(
        unique("imperative"),
        mapper_registry.metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("content", UploadedFileField()),
    )

    class Plain:
        content: UploadedFile | None

    mapper_registry.map_imperatively(Plain, table)
    mapper_registry.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            obj = Plain()
            obj.content = b"v1"  # type: ignore[assignment]
            session.add(obj)
            session.commit()
            obj.content = b"v2"  # type: ignore[assignment]
            session.commit()
            assert obj.content is not None
            assert depot.read(obj.content) == b"v2"
            assert depot.stored() == set(obj.content.files)
            session.delete(obj)
            session.commit()
        assert depot.stored() == set()
    finally:
        mapper_registry.metadata.drop_all(engine)
        mapper_registry.dispose()


@pytest.mark.parametrize("kind", ["joined", "single"])
def test_inheritance(engine: sa.Engine, depot: Depot, kind: str) -> None:
    base_table = unique("animals")

    class Base(DeclarativeBase):
        pass

    class Animal(Base):
        __tablename__ = base_table
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(sa.String(20))
        photo: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    if kind == "joined":

        class Dog(Animal):
            __tablename__ = unique("dogs")
            id: Mapped[int] = mapped_column(sa.ForeignKey(f"{base_table}.id"), primary_key=True)
            kennel: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
            __mapper_args__ = {"polymorphic_identity": "dog"}

    else:

        class Dog(Animal):  # type: ignore[no-redef]
            kennel: Mapped[UploadedFile | None] = mapped_column(UploadedFileField(), nullable=True)
            __mapper_args__ = {"polymorphic_identity": "dog"}

    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            dog = Dog(photo=b"dog photo", kennel=b"kennel")
            session.add_all([dog, Animal(photo=b"animal photo")])
            session.commit()
            assert len(depot.stored()) == 3  # each assignment stored once
            session.expire_all()
            dog.photo = b"new dog photo"
            session.commit()
            assert len(depot.stored()) == 3
            session.delete(dog)
            session.commit()
            animal = session.scalars(sa.select(Animal)).one()
            assert depot.stored() == set(animal.photo.files)  # type: ignore[union-attr]
            session.execute(sa.delete(Animal))
            session.commit()
        assert depot.stored() == set()
    finally:
        Base.metadata.drop_all(engine)
        Base.registry.dispose()


def test_core_statements_hand_the_file_over(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    table = models.Document.__table__
    uploaded = UploadedFile(b"core")
    path = uploaded.path
    with engine.begin() as conn:
        conn.execute(table.insert().values(name="core", content=uploaded))
    del uploaded
    gc.collect()
    remove_abandoned()
    assert path in depot.stored()  # a row holds it: not removed as abandoned
    with engine.connect() as conn:
        loaded = conn.execute(sa.select(table.c.content)).scalar_one()
        assert isinstance(loaded, UploadedFile) and depot.read(loaded) == b"core"
        with pytest.raises(sa.exc.StatementError) as caught:
            conn.execute(table.insert().values(name="raw", content=b"raw bytes"))
        assert isinstance(caught.value.orig, UnsupportedContent)


def test_type_is_cacheable_and_renders_for_migrations() -> None:
    assert UploadedFileField.cache_ok is True
    thumbnails: Any = ()
    first = UploadedFileField(filters=thumbnails, upload_storage="media")
    second = UploadedFileField(filters=thumbnails, upload_storage="media")
    assert first._static_cache_key == second._static_cache_key
    assert hash(first._static_cache_key)
    assert UploadedFileField()._static_cache_key != first._static_cache_key
    assert repr(UploadedFileField()) == "UploadedFileField()"
    assert repr(first) == "UploadedFileField(upload_storage='media')"


def test_nothing_is_installed_at_import_and_uninstall_removes_everything() -> None:
    script = textwrap.dedent(
        """
        import sqlalchemy as sa
        from sqlalchemy import event
        from sqlalchemy.orm import Mapper, Session
        import sa_depot, sa_depot.fields.sqlalchemy, sa_depot.fields.lifecycle as lifecycle
        from sa_depot.fields.upload import UploadedFile
        from sa_depot.orm import core_statements, install, session_events

        def installed():
            return [
                event.contains(Session, "after_transaction_end",
                               session_events.on_after_transaction_end),
                event.contains(Mapper, "mapper_configured", install._on_mapper_configured),
                event.contains(sa.Engine, "after_execute", core_statements.on_after_execute),
            ]

        assert installed() == [False, False, False]
        sa_depot.fields.sqlalchemy.UploadedFileField()
        assert installed() == [True, True, True]
        lifecycle.uninstall()
        assert installed() == [False, False, False]
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
