"""The session lifecycle on SQLite, PostgreSQL and MariaDB: a committed row's file exists and
reads back identical; files nobody keeps are removed; nothing else is."""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from sa_depot.database.journal import flush_completed
from sa_depot.exceptions import FileDiscarded
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.orm.records import remove_abandoned
from sa_depot.schema import pending_removals
from tests.orm.conftest import Depot, Models


def journal_paths(engine: sa.Engine) -> list[str]:
    flush_completed(engine)  # rows of files removed are deleted in batches
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(pending_removals.c.path)).scalars())


def test_commit_keeps_the_file_and_it_reads_back(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"hello")
        session.add(doc)
        session.commit()
        doc_id = doc.id
    with Session(engine) as session:
        loaded = session.get(models.Document, doc_id)
        assert loaded is not None and loaded.content is not None
        assert depot.read(loaded.content) == b"hello"
        assert loaded.content.content_length == 5
        assert depot.stored() == set(loaded.content.files)
    assert journal_paths(engine) == []


def test_rollback_removes_the_files_uploaded_in_the_transaction(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        kept = models.Document(name="kept", content=b"kept")
        session.add(kept)
        session.commit()
        before = depot.stored()
        session.add(models.Document(name="flushed", content=b"flushed"))
        session.flush()
        session.add(models.Document(name="pending", content=b"pending"))
        kept.content = b"replacement"
        session.flush()
        assert len(depot.stored()) == 4
        session.rollback()
        assert depot.stored() == before
        assert kept.content is not None and depot.read(kept.content) == b"kept"
    assert journal_paths(engine) == []


def test_close_with_pending_work_removes_the_uploads(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    session = Session(engine)
    session.add(models.Document(name="never", content=b"never flushed"))
    flushed = models.Document(name="flushed", content=b"flushed")
    session.add(flushed)
    session.flush()
    assert len(depot.stored()) == 2
    session.close()
    assert depot.stored() == set()


def test_with_block_left_by_an_exception_removes_the_uploads(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    doc = models.Document(name="a", content=b"x")
    with pytest.raises(RuntimeError, match="boom"), Session(engine) as session:
        session.add(doc)
        session.flush()
        raise RuntimeError("boom")
    assert depot.stored() == set()
    with pytest.raises(RuntimeError, match="boom"), Session(engine) as session, session.begin():
        session.add(models.Document(name="b", content=b"y"))
        raise RuntimeError("boom")
    assert depot.stored() == set()


def test_integrity_error_at_flush_then_rollback_leaks_nothing(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        session.add(models.Document(name="taken", content=b"first"))
        session.commit()
        before = depot.stored()
        session.add(models.Document(name="taken", content=b"duplicate name"))
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()
        assert len(depot.stored()) == 2
        session.rollback()
        assert depot.stored() == before
        assert session.scalars(sa.select(models.Document)).one().name == "taken"


@pytest.mark.parametrize("how", ["expired", "deferred", "never_loaded"])
def test_replacing_a_value_that_was_not_loaded_still_removes_the_old_file(
    engine: sa.Engine, models: Models, depot: Depot, how: str
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"old")
        session.add(doc)
        session.commit()
        doc_id = doc.id
        old = set(session.get(models.Document, doc_id).content.files)  # type: ignore[union-attr]
    with Session(engine) as session:
        if how == "expired":
            doc = session.get(models.Document, doc_id)
            session.commit()  # expires doc: content is unloaded again
        elif how == "deferred":
            doc = session.scalars(
                sa.select(models.Document).options(defer(models.Document.content))
            ).one()
        else:
            doc = session.get(models.Document, doc_id)
            session.expire(doc, ["content"])
        assert "content" not in doc.__dict__
        doc.content = b"new"
        session.commit()
        new = set(doc.content.files)
    assert depot.stored() == new and not (old & new)
    assert journal_paths(engine) == []


def test_setting_none_removes_the_file_after_commit_only(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"x")
        session.add(doc)
        session.commit()
        path = doc.content.path  # type: ignore[union-attr]
        doc.content = None
        session.flush()
        assert path in depot.stored()
        # the journal row is written in the transaction, and goes with it
        assert session.scalars(sa.select(pending_removals.c.path)).all() == [path]
        session.rollback()
        assert journal_paths(engine) == []
        assert path in depot.stored()
        doc.content = None
        session.commit()
        assert depot.stored() == set()
        assert session.get(models.Document, doc.id).content is None  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["direct", "cascade", "orphan"])
def test_deleted_objects_lose_their_files_after_commit_and_keep_them_on_rollback(
    engine: sa.Engine, models: Models, depot: Depot, how: str
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"doc")
        doc.attachments = [models.Attachment(file=b"one"), models.Attachment(file=b"two")]
        session.add(doc)
        session.commit()
        everything = depot.stored()
        assert len(everything) == 3
        doc_path = doc.content.path  # type: ignore[union-attr]
        first_path = doc.attachments[0].file.path
        second_path = doc.attachments[1].file.path

        def remove() -> set[str]:
            """Make the change; return the paths it should remove."""
            session.expire_all()  # the old values must be found even when unloaded
            target = session.get(models.Document, doc.id)
            assert target is not None
            if how == "direct":
                session.delete(target.attachments[0])
                return {first_path}
            if how == "cascade":
                session.delete(target)
                return {doc_path, first_path, second_path}
            target.attachments.pop(0)
            return {first_path}

        remove()
        session.flush()
        session.rollback()
        assert depot.stored() == everything
        removed = remove()
        session.commit()
        assert depot.stored() == everything - removed
    assert journal_paths(engine) == []


def test_merge_then_commit_keeps_and_merge_then_rollback_removes(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        original = models.Document(name="a", content=b"v1")
        session.add(original)
        session.commit()
        doc_id = original.id
        v1 = set(original.content.files)  # type: ignore[union-attr]

    detached = models.Document(id=doc_id, name="a", content=b"v2")
    with Session(engine) as session:
        merged = session.merge(detached)
        session.flush()
        session.rollback()
        assert depot.stored() == v1
        assert depot.read(session.get(models.Document, doc_id).content) == b"v1"  # type: ignore[union-attr, arg-type]

    detached = models.Document(id=doc_id, name="a", content=b"v3")
    with Session(engine) as session:
        merged = session.merge(detached)
        session.commit()
        assert merged.content is not None
        v3 = set(merged.content.files)
        assert depot.read(merged.content) == b"v3"
    del detached, merged
    gc.collect()
    remove_abandoned()
    assert depot.stored() == v3  # v1 replaced; v2 rolled back; nothing copied


def test_merge_of_an_unchanged_detached_object_keeps_the_file(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"v1")
        session.add(doc)
        session.commit()
        session.refresh(doc)
        session.expunge(doc)
    with Session(engine) as session:
        session.merge(doc)
        session.commit()
    assert depot.stored() == set(doc.content.files)  # type: ignore[union-attr]


def test_an_object_never_added_to_a_session_leaks_nothing(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    doc = models.Document(name="a", content=b"transient")
    doc.content = b"replaced while transient"
    assert len(depot.stored()) == 2
    del doc
    gc.collect()
    with Session(engine) as session:  # the next transaction's end cleans up
        session.execute(sa.select(1))
    assert depot.stored() == set()


def test_uploads_nobody_answers_for_are_removed_when_the_process_exits(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from sa_depot.fields.upload import UploadedFile
        from sa_depot.manager import DepotManager

        storage = DepotManager.configure("files", {"depot.storage_path": sys.argv[1]})
        kept = UploadedFile(b"never saved, still referenced at exit")
        collected = UploadedFile(b"never saved, collected before exit")
        del collected
        print(len(storage.list()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"  # both were stored
    remaining = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert remaining == []


def test_reusing_a_descriptor_whose_upload_was_rolled_back_is_refused(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    doc = models.Document(name="a", content=b"x")
    with Session(engine) as session:
        session.add(doc)
        session.flush()
        session.rollback()
    assert depot.stored() == set()
    # doc is transient again and still holds the descriptor of a removed file
    with Session(engine) as session:
        session.add(doc)
        with pytest.raises(FileDiscarded, match="assign the content again"):
            session.commit()
    assert depot.stored() == set()
    with pytest.raises(FileDiscarded):
        models.Document(name="b", content=doc.content)
    doc.content = b"again"
    with Session(engine) as session:
        session.add(doc)
        session.commit()
        assert depot.read(doc.content) == b"again"
    assert depot.stored() == set(doc.content.files)


def test_an_object_expunged_before_any_flush_loses_its_upload_at_commit(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"x")
        session.add(doc)
        session.expunge(doc)
        session.commit()
    assert depot.stored() == set()


@pytest.mark.parametrize(
    "make_content",
    [
        lambda: b"bytes",
        lambda: io.BytesIO(b"bytes"),
        lambda: FileIntent(b"bytes", "hello.txt", "text/plain"),
        lambda: _werkzeug_upload(b"bytes"),
    ],
    ids=["bytes", "file", "intent", "werkzeug"],
)
def test_every_kind_of_content_can_be_assigned(
    engine: sa.Engine, models: Models, depot: Depot, make_content: object
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=make_content())  # type: ignore[operator]
        session.add(doc)
        session.commit()
        session.expire_all()
        assert depot.read(doc.content) == b"bytes"  # type: ignore[arg-type]
        assert isinstance(doc.content, UploadedFile)


def test_an_uploaded_file_can_be_assigned_and_none_clears(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    uploaded = UploadedFile(FileIntent(b"pdf?", "report.pdf", "application/pdf"))
    with Session(engine) as session:
        doc = models.Document(name="a", content=uploaded)
        session.add(doc)
        session.commit()
        session.expire_all()
        assert doc.content == uploaded
        assert doc.content.filename == "report.pdf"
        assert doc.content.content_type == "application/pdf"
        doc.content = None
        session.commit()
        session.expire_all()
        assert doc.content is None
    assert depot.stored() == set()


def _werkzeug_upload(data: bytes) -> object:
    werkzeug = pytest.importorskip("werkzeug.datastructures")
    return werkzeug.FileStorage(io.BytesIO(data), filename="upload.txt", content_type="text/plain")
