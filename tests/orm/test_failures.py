"""Storages that fail: during an upload the error surfaces (at the assignment or the flush),
the transaction rolls back and nothing leaks; while old files are removed after a commit the
commit still succeeds and the journal keeps the files for the collector."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot import schema
from sa_depot.database import journal
from sa_depot.database.journal import flush_completed
from sa_depot.exceptions import StorageError
from sa_depot.fields import lifecycle
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.schema import pending_removals
from tests.orm.conftest import STORAGE_CONFIGS, STORAGE_KIND, Depot, unique
from tests.orm.flaky import FlakyStorage


class FailingFilter(FileFilter):
    """Stores a derivative, then fails."""

    def on_save(self, uploaded_file: UploadedFile) -> None:
        uploaded_file.store_content(b"derivative")
        raise ValueError("filter failed after storing a derivative")


@pytest.fixture
def flaky(depot: Depot, tmp_path: Path) -> FlakyStorage:
    storage = DepotManager.configure("flaky", {"depot.backend": "tests.orm.flaky.FlakyStorage"})
    assert isinstance(storage, FlakyStorage)
    storage.inner = DepotManager.from_config(STORAGE_CONFIGS[STORAGE_KIND](tmp_path / "inner"))
    return storage


@pytest.fixture
def Document(engine: sa.Engine, flaky: FlakyStorage) -> Iterator[Any]:
    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = unique("flaky_documents")
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(upload_storage="flaky")
        )
        plain: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
        filtered: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(filters=[FailingFilter()])
        )

    Base.metadata.create_all(engine)
    yield Document
    Base.metadata.drop_all(engine)
    Base.registry.dispose()


def stored(storage: Any) -> set[str]:
    return set(storage.list())


def journal_rows(engine: sa.Engine) -> list[Any]:
    flush_completed(engine)  # rows of files removed are deleted in batches
    with engine.connect() as conn:
        return list(conn.execute(sa.select(pending_removals)).mappings())


def test_a_failing_upload_raises_at_assignment_and_leaks_nothing(
    engine: sa.Engine, Document: Any, flaky: FlakyStorage, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = Document(content=b"v1")
        session.add(doc)
        session.commit()
        before = stored(flaky)
        flaky.fail_writes = True
        with pytest.raises(StorageError, match="injected write failure"):
            doc.content = b"v2"
        with pytest.raises(ValueError, match="filter failed"):
            doc.filtered = b"anything"
        session.commit()  # the session is still usable; the row keeps its file
        session.expire_all()
        assert stored(flaky) == before
        assert depot.stored() == set()
        with doc.content.file as f:
            assert f.read() == b"v1"


def test_a_failing_copy_at_flush_rolls_back_and_leaks_nothing(
    engine: sa.Engine, Document: Any, flaky: FlakyStorage, depot: Depot
) -> None:
    with Session(engine) as session:
        source = Document(plain=b"source")
        session.add(source)
        session.commit()
        flaky.fail_writes = True
        session.add(Document(content=source.plain))  # another row's file: copied at flush
        with pytest.raises(StorageError, match="injected write failure"):
            session.flush()
        session.rollback()
        assert stored(flaky) == set()
        assert depot.stored() == set(source.plain.files)


def test_a_failing_removal_after_commit_is_journaled_for_the_collector(
    engine: sa.Engine, Document: Any, flaky: FlakyStorage
) -> None:
    with Session(engine) as session:
        doc, gone = Document(content=b"old"), Document(content=b"deleted")
        session.add_all([doc, gone])
        session.commit()
        old = doc.content.path
        deleted = gone.content.path
        flaky.fail_deletes = True
        doc.content = b"new"
        session.delete(gone)
        session.commit()  # succeeds although the removals fail
        new = doc.content.path
    assert stored(flaky) == {p.split("/")[1] for p in (old, new, deleted)}
    rows = journal_rows(engine)
    assert sorted(r["path"] for r in rows) == sorted([old, deleted])
    assert all(r["attempts"] == 1 and "injected delete failure" in r["last_error"] for r in rows)
    assert [p.path for p in journal.pending(engine)] == sorted([old, deleted])

    report = journal.finish_pending_removals(engine)  # still failing: counted again
    assert sorted(p for p, _ in report.failed) == sorted([old, deleted])
    assert {r["attempts"] for r in journal_rows(engine)} == {2}

    flaky.fail_deletes = False
    report = journal.finish_pending_removals(engine)
    assert sorted(report.removed) == sorted([old, deleted]) and not report.failed
    assert journal_rows(engine) == []
    assert stored(flaky) == {new.split("/")[1]}


def test_the_collector_hook_keeps_files_a_row_still_references(
    engine: sa.Engine, Document: Any, flaky: FlakyStorage
) -> None:
    with Session(engine) as session:
        doc = Document(content=b"old")
        session.add(doc)
        session.commit()
        old = doc.content.path
        flaky.fail_deletes = True
        doc.content = b"new"
        session.commit()
    flaky.fail_deletes = False
    report = journal.finish_pending_removals(engine, is_referenced=lambda path: path == old)
    assert report.kept == [old] and not report.removed
    assert journal_rows(engine) == []
    assert old.split("/")[1] in stored(flaky)


def test_a_rollback_whose_cleanup_fails_does_not_raise(
    engine: sa.Engine, Document: Any, flaky: FlakyStorage
) -> None:
    with Session(engine) as session:
        session.add(Document(content=b"x"))
        session.flush()
        flaky.fail_deletes = True
        session.rollback()  # the upload stays, unreferenced: the collector's sweep removes it
    assert len(stored(flaky)) == 1


@pytest.mark.parametrize("journal_on", [True, False], ids=["journal", "no_journal"])
def test_a_database_without_sa_depots_tables_gets_them_on_first_need(
    engine: sa.Engine,
    Document: Any,
    flaky: FlakyStorage,
    journal_on: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A filedepot application that only renamed its imports never created sa_depot's tables:
    its edits and deletes work all the same, the tables are created the first time they are
    needed, and a warning names them and how to manage them."""
    schema.metadata.drop_all(engine)
    engine = sa.create_engine(engine.url)  # a new Engine: the tables' presence is cached per Engine
    lifecycle.configure(journal=journal_on)
    with caplog.at_level(logging.WARNING, logger="sa_depot"):
        with Session(engine) as session:
            doc = Document(content=b"old")
            session.add(doc)
            session.commit()
            old = doc.content.file_id
            doc.content = b"new"
            session.commit()
            assert stored(flaky) == {doc.content.file_id}
            assert old not in stored(flaky)
            session.delete(doc)
            session.commit()
            assert stored(flaky) == set()
    created = [r.getMessage() for r in caplog.records if "sa_depot created its tables" in r.message]
    assert len(created) == 1, created  # once, not per transaction
    assert "sa_depot_files" in created[0] and "create_all(engine)" in created[0]
    names = sa.inspect(engine).get_table_names()
    assert {t.name for t in schema.metadata.sorted_tables} <= set(names)
    engine.dispose()


def test_a_database_with_sa_depots_tables_warns_nothing(
    engine: sa.Engine, Document: Any, flaky: FlakyStorage, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sa_depot"), Session(engine) as session:
        doc = Document(content=b"old")
        session.add(doc)
        session.commit()
        doc.content = b"new"
        session.commit()
        assert stored(flaky) == {doc.content.file_id}
    assert not [r for r in caplog.records if "created its tables" in r.message]
