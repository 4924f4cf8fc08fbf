"""Rows that already share a stored file (written through Core, by filedepot, or copied by raw
SQL): replacing or deleting one of them keeps the file while another committed row references
it, and removes it with the last one (guarantee 5). The ORM itself never makes two rows share a
file (see test_sharing.py).

Rows written through Core with the field type join the file registry as they are written. Rows
written by raw SQL or filedepot join it when adopted (``sa_depot.migrate.adopt_files``); until
then, before removing a file such a row let go of, the lifecycle asks the file columns whether
another committed row references it (a scan, which adoption makes unnecessary)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot.database.journal import flush_completed
from sa_depot.fields import lifecycle
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.migrate import adopt_files
from sa_depot.schema import pending_removals
from tests.orm.conftest import Depot, Models, unique


def journal_paths(engine: sa.Engine) -> list[str]:
    flush_completed(engine)  # rows of files removed are deleted in batches
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(pending_removals.c.path)))


def filedepot_descriptor(depot: Depot, content: bytes) -> dict[str, Any]:
    """A file stored and described the way filedepot does (no ``files``, no checksum)."""
    file_id = depot.storage.create(content, "legacy.txt", "text/plain")
    return {
        "file_id": file_id,
        "path": f"default/{file_id}",
        "filename": "legacy.txt",
        "content_type": "text/plain",
        "uploaded_at": "2020-01-02 03:04:05",
        "_public_url": None,
    }


def insert_sharing(engine: sa.Engine, models: Models, descriptor: dict[str, Any]) -> None:
    """Two documents, ``a`` and ``b``, holding one descriptor (a Core insert: no ORM events)."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(models.Document.__table__),
            [{"name": "a", "content": descriptor}, {"name": "b", "content": descriptor}],
        )


def insert_sharing_by_raw_sql(engine: sa.Engine, models: Models, text: str) -> None:
    table = models.Document.__tablename__
    with engine.begin() as conn:
        for name in ("a", "b"):
            conn.execute(
                sa.text(f"INSERT INTO {table} (name, content) VALUES (:name, :content)"),
                {"name": name, "content": text},
            )


def by_name(session: Session, models: Models, name: str) -> Any:
    return session.scalars(sa.select(models.Document).where(models.Document.name == name)).one()


def delete_via_session(session: Session, models: Models, name: str) -> None:
    session.delete(by_name(session, models, name))


def replace_via_session(session: Session, models: Models, name: str) -> None:
    by_name(session, models, name).content = f"new {name}".encode()


def clear_via_session(session: Session, models: Models, name: str) -> None:
    by_name(session, models, name).content = None


def bulk_delete(session: Session, models: Models, name: str) -> None:
    session.execute(sa.delete(models.Document).where(models.Document.name == name))


def bulk_update(session: Session, models: Models, name: str) -> None:
    Document = models.Document
    session.execute(
        sa.update(Document)
        .where(Document.name == name)
        .values(content=UploadedFile(f"new {name}".encode()))
    )


CHANGES: dict[str, Callable[[Session, Models, str], None]] = {
    "delete": delete_via_session,
    "replace": replace_via_session,
    "clear": clear_via_session,
    "bulk_delete": bulk_delete,
    "bulk_update": bulk_update,
}


@pytest.fixture(params=["delete_returning", "locking_read"])
def registry_delete(
    request: pytest.FixtureRequest, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The registry's two ways of letting go of a row's attachments: one ``DELETE ...
    RETURNING`` where the dialect has it (PostgreSQL, SQLite, MariaDB), a locking read and a
    ``DELETE`` where it has not (MySQL), tried here on every database."""
    if request.param == "locking_read":
        monkeypatch.setattr(engine.dialect, "delete_returning", False)
    elif not engine.dialect.delete_returning:
        pytest.skip(f"{engine.dialect.name} has no DELETE ... RETURNING")
    return str(request.param)


def other_files(engine: sa.Engine, models: Models, shared: str) -> set[str]:
    """The files of the rows' values other than ``shared``."""
    with Session(engine) as session:
        values = session.scalars(sa.select(models.Document.content)).all()
    return {p for v in values if v is not None and v.path != shared for p in v.files}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("written_by", ["core", "filedepot_text_adopted"])
def test_a_shared_file_stays_until_no_row_references_it(
    engine: sa.Engine,
    models: Models,
    depot: Depot,
    change: str,
    written_by: str,
    registry_delete: str,
) -> None:
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    shared = descriptor["path"]
    if written_by == "core":
        insert_sharing(engine, models, dict(UploadedFile(descriptor)))
    else:
        insert_sharing_by_raw_sql(engine, models, json.dumps(descriptor))
        [report] = adopt_files(engine, models.Document.__table__)
        assert report.rows_adopted == 2 and not report.issues

    with Session(engine) as session:
        CHANGES[change](session, models, "a")
        session.commit()
    assert shared in depot.stored()
    with Session(engine) as session:
        b = by_name(session, models, "b")
        assert depot.read(b.content) == b"shared bytes"
    assert journal_paths(engine) == []  # the journal row went, the file stayed

    with Session(engine) as session:
        CHANGES[change](session, models, "b")
        session.commit()
    assert shared not in depot.stored()
    assert depot.stored() == other_files(engine, models, shared)
    assert journal_paths(engine) == []


@pytest.mark.parametrize("change", CHANGES)
def test_files_of_rows_not_adopted_are_checked_in_the_columns(
    engine: sa.Engine, models: Models, depot: Depot, change: str
) -> None:
    """Raw SQL wrote two rows sharing a file, and nobody adopted them: the registry does not
    know the file, so before removing it after a commit the lifecycle asks the file columns
    (one LIKE query each) whether a committed row still references it."""
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    shared = descriptor["path"]
    insert_sharing_by_raw_sql(engine, models, json.dumps(descriptor))
    with Session(engine) as session:
        CHANGES[change](session, models, "a")
        session.commit()
    assert shared in depot.stored()
    with Session(engine) as session:
        CHANGES[change](session, models, "b")
        session.commit()
    assert shared not in depot.stored()
    assert journal_paths(engine) == []


def test_adopted_rows_need_no_scan_of_the_columns(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    insert_sharing_by_raw_sql(engine, models, json.dumps(descriptor))
    for adopted in (False, True):
        if adopted:
            adopt_files(engine, models.Document.__table__, restart=True)
        scans = count_scans(engine, models, lambda: replace_first_row(engine, models))
        assert (scans == 0) if adopted else (scans >= 1)  # LIKE queries on the columns, or none


def replace_first_row(engine: sa.Engine, models: Models) -> None:
    with Session(engine) as session:
        doc = session.scalars(sa.select(models.Document).order_by(models.Document.id)).first()
        doc.content = b"replacement"
        session.commit()


def count_scans(engine: sa.Engine, models: Models, action: Callable[[], None]) -> int:
    """How many statements read a user table with LIKE while ``action`` runs."""
    scans: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "LIKE" in statement.upper() and "sa_depot_" not in statement:
            scans.append(statement)

    sa.event.listen(engine, "before_cursor_execute", watch)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", watch)
    return len(scans)


def test_without_the_check_files_of_rows_not_adopted_go_unchecked(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    insert_sharing_by_raw_sql(engine, models, json.dumps(descriptor))
    lifecycle.configure(check_references=False)
    with Session(engine) as session:
        bulk_delete(session, models, "a")
        session.commit()
    assert descriptor["path"] not in depot.stored()  # the price of turning the check off


def test_rows_sharing_a_file_deleted_together_remove_it(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    insert_sharing(engine, models, descriptor)
    with Session(engine) as session:
        session.execute(sa.delete(models.Document))
        session.commit()
    assert depot.stored() == set()
    assert journal_paths(engine) == []


def test_a_reference_from_another_file_column_keeps_the_file(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"own")
        session.add(doc)
        session.commit()
        doc_id = doc.id
    with engine.begin() as conn:
        conn.execute(sa.update(models.Document.__table__).values(content=descriptor))
        conn.execute(
            sa.insert(models.Attachment.__table__).values(document_id=doc_id, file=descriptor)
        )
    with Session(engine) as session:
        by_name(session, models, "a").content = None
        session.commit()
        assert descriptor["path"] in depot.stored()
        [attachment] = session.scalars(sa.select(models.Attachment)).all()
        assert depot.read(attachment.file) == b"shared bytes"


def test_rows_registered_through_core_stay_safe_without_the_check(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    """``check_references=False`` only concerns files the registry does not know: rows
    written through Core with the field type are registered, and keep their shared file."""
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    insert_sharing(engine, models, descriptor)
    lifecycle.configure(check_references=False)
    with Session(engine) as session:
        bulk_delete(session, models, "a")
        session.commit()
    assert descriptor["path"] in depot.stored()


# == a filedepot table: the descriptors are JSON text in a VARCHAR column ======================
@pytest.fixture
def legacy(engine: sa.Engine, depot: Depot) -> Iterator[Any]:
    """A model mapped with UploadedFileField on a table whose column really is a VARCHAR."""
    table_name = unique("legacy")
    ddl = sa.MetaData()
    sa.Table(
        table_name,
        ddl,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20)),
        sa.Column("content", sa.String(2000)),
    )
    ddl.create_all(engine)

    class Base(DeclarativeBase):
        pass

    class Legacy(Base):
        __tablename__ = table_name
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(20))
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    try:
        yield Legacy
    finally:
        ddl.drop_all(engine)
        Base.registry.dispose()


@pytest.mark.parametrize("bulk", [False, True], ids=["session_delete", "bulk_delete"])
def test_filedepot_rows_sharing_a_varchar_descriptor(
    engine: sa.Engine, legacy: Any, depot: Depot, bulk: bool
) -> None:
    descriptor = filedepot_descriptor(depot, b"legacy bytes")
    text = json.dumps(descriptor)
    with engine.begin() as conn:
        for row in ("a", "b"):
            conn.execute(
                sa.text(f"INSERT INTO {legacy.__tablename__} (name, content) VALUES (:n, :c)"),
                {"n": row, "c": text},
            )
    [report] = adopt_files(engine, legacy.__table__)
    assert report.rows_adopted == 2 and report.files_attached == 2

    def delete(name: str) -> None:
        with Session(engine) as session:
            if bulk:
                session.execute(sa.delete(legacy).where(legacy.name == name))
            else:
                session.delete(session.scalars(sa.select(legacy).filter_by(name=name)).one())
            session.commit()

    delete("a")
    assert descriptor["path"] in depot.stored()
    with Session(engine) as session:
        b = session.scalars(sa.select(legacy).filter_by(name="b")).one()
        assert depot.read(b.content) == b"legacy bytes"
    delete("b")
    assert depot.stored() == set()
    assert journal_paths(engine) == []


def insert_four_sharing(engine: sa.Engine, models: Models, descriptor: dict[str, Any]) -> None:
    """Documents ``a``, ``b``, ``c`` and ``d`` holding one descriptor: the first three by one
    Core insert (no keys known: the registry counts them together), ``d`` by one of its own."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(models.Document.__table__),
            [{"name": name, "content": descriptor} for name in "abc"],
        )
        conn.execute(sa.insert(models.Document.__table__).values(name="d", content=descriptor))


def change_in_one_flush(engine: sa.Engine, models: Models, changes: dict[str, str]) -> None:
    """Each row of ``changes`` (name -> change) changed, then written by one flush."""
    with Session(engine) as session:
        Document = models.Document
        rows = session.scalars(sa.select(Document).where(Document.name.in_(changes))).all()
        assert len(rows) == len(changes)
        for row in rows:  # loaded first: a query would flush the changes made before it
            name, change = row.name, changes[row.name]
            if change == "delete":
                session.delete(row)
            else:
                row.content = None if change == "clear" else f"new {name}".encode()
        session.commit()


@pytest.mark.parametrize("written_by", ["core", "filedepot_text_adopted"])
@pytest.mark.parametrize(
    ("first", "second"), [("delete", "delete"), ("replace", "delete"), ("clear", "replace")]
)
def test_rows_sharing_a_file_changed_by_one_flush(
    engine: sa.Engine,
    models: Models,
    depot: Depot,
    written_by: str,
    first: str,
    second: str,
    registry_delete: str,
) -> None:
    """One flush letting go of several uses of a file counts every one of them: two of four
    rows keep it, the flush changing the last two removes it."""
    descriptor = filedepot_descriptor(depot, b"shared bytes")
    shared = descriptor["path"]
    if written_by == "core":
        insert_four_sharing(engine, models, dict(UploadedFile(descriptor)))
    else:
        insert_four_sharing(engine, models, descriptor)
        with engine.begin() as conn:  # forget what the Core inserts registered
            for table in ("sa_depot_attachments", "sa_depot_files"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
        [report] = adopt_files(engine, models.Document.__table__)
        assert report.rows_adopted == 4 and not report.issues

    change_in_one_flush(engine, models, {"a": first, "b": second})
    assert shared in depot.stored()
    with Session(engine) as session:
        for name in "cd":
            assert depot.read(by_name(session, models, name).content) == b"shared bytes"
    assert journal_paths(engine) == []

    change_in_one_flush(engine, models, {"c": first, "d": second})
    assert shared not in depot.stored()
    assert depot.stored() == other_files(engine, models, shared)
    assert journal_paths(engine) == []
