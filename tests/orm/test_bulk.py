"""ORM-enabled ``delete()``, ``update()`` and ``insert()`` executed through a Session: the files
of the rows they touch follow the transaction. Raw SQL is not seen (the collector's job)."""

from __future__ import annotations

import gc

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from sa_depot.database.journal import flush_completed
from sa_depot.exceptions import UnsupportedContent
from sa_depot.fields.upload import UploadedFile
from sa_depot.orm.records import remove_abandoned
from sa_depot.schema import pending_removals
from tests.orm.conftest import Depot, Models


def add_documents(engine: sa.Engine, models: Models, *names: str) -> dict[str, UploadedFile]:
    with Session(engine) as session:
        docs = [models.Document(name=n, content=n.encode()) for n in names]
        session.add_all(docs)
        session.commit()
        return {d.name: d.content for d in docs}


def contents(engine: sa.Engine, models: Models) -> dict[str, bytes | None]:
    result: dict[str, bytes | None] = {}
    with Session(engine) as session:
        for doc in session.scalars(sa.select(models.Document)):
            if doc.content is None:
                result[doc.name] = None
            else:
                with doc.content.file as stored:
                    result[doc.name] = stored.read()
    return result


def journal_is_empty(engine: sa.Engine) -> bool:
    flush_completed(engine)  # rows of files removed are deleted in batches
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(pending_removals)).scalar() == 0


@pytest.mark.parametrize("synchronize_session", ["auto", "fetch", False])
def test_orm_delete_removes_the_files_of_the_deleted_rows_after_commit(
    engine: sa.Engine, models: Models, depot: Depot, synchronize_session: object
) -> None:
    files = add_documents(engine, models, "a1", "a2", "b")
    Document = models.Document
    statement = sa.delete(Document).where(Document.name.like("a%"))
    options = {"synchronize_session": synchronize_session}
    with Session(engine) as session:
        session.execute(statement, execution_options=options)
        session.rollback()
    assert contents(engine, models) == {"a1": b"a1", "a2": b"a2", "b": b"b"}
    with Session(engine) as session:
        session.execute(statement, execution_options=options)
        session.commit()
    assert contents(engine, models) == {"b": b"b"}
    assert depot.stored() == set(files["b"].files)
    assert journal_is_empty(engine)


def test_orm_update_to_none_removes_the_files_after_commit(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    files = add_documents(engine, models, "a1", "a2", "b")
    Document = models.Document
    with Session(engine) as session:
        session.execute(sa.update(Document).where(Document.name != "b").values(content=None))
        session.commit()
    assert contents(engine, models) == {"a1": None, "a2": None, "b": b"b"}
    assert depot.stored() == set(files["b"].files)


def test_orm_update_with_a_new_file_replaces_on_commit_and_not_on_rollback(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    files = add_documents(engine, models, "a", "b")
    Document = models.Document
    with Session(engine) as session:
        new = UploadedFile(b"new a")
        session.execute(sa.update(Document).where(Document.name == "a").values(content=new))
        session.rollback()
    assert contents(engine, models) == {"a": b"a", "b": b"b"}
    assert depot.stored() == set(files["a"].files) | set(files["b"].files)
    with Session(engine) as session:
        new = UploadedFile(b"new a")
        session.execute(sa.update(Document).where(Document.name == "a").values(content=new))
        session.commit()
    assert contents(engine, models) == {"a": b"new a", "b": b"b"}
    assert depot.stored() == set(new.files) | set(files["b"].files)
    assert journal_is_empty(engine)


def test_orm_update_by_primary_key(engine: sa.Engine, models: Models, depot: Depot) -> None:
    add_documents(engine, models, "a", "b")
    Document = models.Document
    with Session(engine) as session:
        ids = dict(session.execute(sa.select(Document.name, Document.id)).all())
        session.execute(
            sa.update(Document),
            [
                {"id": ids["a"], "content": UploadedFile(b"new a")},
                {"id": ids["b"], "content": None},
            ],
        )
        session.commit()
    assert contents(engine, models) == {"a": b"new a", "b": None}
    with Session(engine) as session:
        a = session.scalars(sa.select(Document.content).where(Document.name == "a")).one()
        assert depot.stored() == set(a.files)


def test_orm_update_that_matches_no_row_discards_its_new_file_on_commit(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    files = add_documents(engine, models, "a")
    Document = models.Document
    with Session(engine) as session:
        new = UploadedFile(b"never written")
        session.execute(sa.update(Document).where(Document.name == "nobody").values(content=new))
        session.commit()
    # ``new`` is still referenced: the commit, not the garbage collector, removed its file.
    assert not depot.storage.exists(new.file_id)
    assert depot.stored() == set(files["a"].files)
    assert contents(engine, models) == {"a": b"a"}


def test_orm_update_by_primary_key_discards_the_files_of_keys_that_match_no_row(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    add_documents(engine, models, "a", "b")
    Document = models.Document
    with Session(engine) as session:
        ids: dict[str, int] = dict(session.execute(sa.select(Document.name, Document.id)).all())
        missing = max(ids.values()) + 1000
        new_a, orphan = UploadedFile(b"new a"), UploadedFile(b"no such row")
        try:
            session.execute(
                sa.update(Document),
                [{"id": ids["a"], "content": new_a}, {"id": missing, "content": orphan}],
            )
        except StaleDataError:  # where the driver counts rows per set: raised after all ran
            pass
        session.commit()
    assert contents(engine, models) == {"a": b"new a", "b": b"b"}
    assert depot.storage.exists(new_a.file_id)
    assert not depot.storage.exists(orphan.file_id)
    with Session(engine) as session:
        referenced = {p for c in session.scalars(sa.select(Document.content)) for p in c.files}
    assert depot.stored() == referenced
    assert journal_is_empty(engine)


def test_orm_insert_keeps_on_commit_and_removes_on_rollback(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    Document = models.Document
    with Session(engine) as session:
        session.execute(
            sa.insert(Document),
            [{"name": "a", "content": UploadedFile(b"a")}, {"name": "b", "content": None}],
        )
        session.rollback()
    assert depot.stored() == set()
    with Session(engine) as session:
        session.execute(sa.insert(Document).values(name="c", content=UploadedFile(b"c")))
        session.commit()
    gc.collect()
    remove_abandoned()
    assert contents(engine, models) == {"c": b"c"}
    assert len(depot.stored()) == 1


def test_a_failing_statement_schedules_nothing(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    add_documents(engine, models, "a", "b")
    before = depot.stored()
    Document = models.Document
    with Session(engine) as session:
        with pytest.raises(sa.exc.IntegrityError):
            session.execute(
                sa.update(Document).where(Document.name == "a").values(name="b", content=None)
            )
        if engine.dialect.name == "postgresql":  # the failed statement aborted the transaction
            session.rollback()
        else:  # the others carry on: committing must not remove the file
            session.commit()
    assert depot.stored() == before
    assert contents(engine, models) == {"a": b"a", "b": b"b"}


def test_one_file_written_into_several_rows_is_refused(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    add_documents(engine, models, "a1", "a2")
    before = depot.stored()
    Document = models.Document
    with Session(engine) as session:
        with pytest.raises(UnsupportedContent, match="one row"):
            session.execute(
                sa.update(Document)
                .where(Document.name.like("a%"))
                .values(content=UploadedFile(b"shared"))
            )
        shared = UploadedFile(b"shared")
        with pytest.raises(UnsupportedContent, match="one row"):
            session.execute(
                sa.insert(Document),
                [{"name": "x", "content": shared}, {"name": "y", "content": shared}],
            )
        with pytest.raises(UnsupportedContent, match="UploadedFile"):
            session.execute(sa.update(Document).values(content=b"raw bytes"))
        session.rollback()
    del shared
    gc.collect()
    remove_abandoned()
    assert depot.stored() == before


def test_raw_sql_is_invisible_and_left_to_the_collector(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    files = add_documents(engine, models, "a")
    with Session(engine) as session:
        session.execute(sa.text(f"DELETE FROM {models.Document.__tablename__}"))
        session.commit()
    assert contents(engine, models) == {}
    assert depot.stored() == set(files["a"].files)  # unreferenced: the collector removes it
