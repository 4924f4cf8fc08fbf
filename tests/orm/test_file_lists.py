"""File lists (UploadedFileListField) on SQLite, PostgreSQL and MariaDB: each item lives and
dies with its row and its place in the list under the guarantees of a single file (commit,
replace and delete, rollback, savepoints, sharing, the registry, the collector), changes made
in place are tracked, and the child-table pattern of filedepot applications keeps working."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot.collector import collect
from sa_depot.database.journal import flush_completed
from sa_depot.exceptions import ValidationFailed
from sa_depot.fields.sqlalchemy import UploadedFileListField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.io.validation import MaxSize
from sa_depot.schema import attachments, pending_removals
from tests.orm.conftest import Depot, Models, unique


@pytest.fixture(scope="module")
def Album() -> Iterator[Any]:
    class Base(DeclarativeBase):
        pass

    class Album(Base):
        __tablename__ = unique("albums")
        __table_args__ = {"sqlite_autoincrement": True}
        id: Mapped[int] = mapped_column(primary_key=True)
        photos: Mapped[list[UploadedFile]] = mapped_column(
            UploadedFileListField(validators=[MaxSize(100)])
        )

    yield Album
    Base.registry.dispose()


@pytest.fixture
def album(engine: sa.Engine, depot: Depot, Album: Any) -> Iterator[Any]:
    Album.metadata.create_all(engine)
    yield Album
    Album.metadata.drop_all(engine)


def contents(row: Any) -> list[bytes]:
    result = []
    for photo in row.photos:
        with photo.file as stored:
            result.append(stored.read())
    return result


def attached(session: Session, Album: Any, row_id: int) -> set[str]:
    """The paths the file registry attaches to the row (read in the session's transaction:
    SQLite lets one connection write at a time)."""
    found = session.execute(
        sa.select(attachments.c.path).where(
            attachments.c.table_name == Album.__table__.fullname,
            attachments.c.row_key == f"[{row_id}]",
        )
    )
    return set(found.scalars())


def journal(engine: sa.Engine) -> list[str]:
    flush_completed(engine)  # rows of files removed are deleted in batches
    with engine.connect() as conn:
        return list(conn.execute(sa.select(pending_removals.c.path)).scalars())


def paths(row: Any) -> set[str]:
    return {p for photo in row.photos for p in photo.files}


def test_changes_in_place_follow_the_transaction(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album()
        row.photos.append(b"one")  # a new row starts with an empty list
        row.photos.extend([b"two", FileIntent(b"three", "3.txt", "text/plain")])
        session.add(row)
        session.commit()
        assert contents(row) == [b"one", b"two", b"three"]
        assert depot.stored() == paths(row) == attached(session, album, row.id)

        first, second = row.photos[0].path, row.photos[1].path
        row.photos.reverse()  # a new order; the same files
        row.photos.insert(1, UploadedFile.of(b"inserted"))
        del row.photos[-1]  # "one"
        row.photos[0] = b"three again"  # replaces "three"
        row.photos.remove(next(p for p in row.photos if p.path == second))
        session.flush()
        assert first in depot.stored()  # removed from the list: the file waits for the commit
        session.commit()
        session.expire_all()
        assert contents(row) == [b"three again", b"inserted"]
        assert depot.stored() == paths(row) == attached(session, album, row.id)
        flush_completed(session.connection())
        assert session.execute(sa.select(pending_removals.c.path)).all() == []

        row.photos.clear()
        session.commit()
        assert row.photos == [] and depot.stored() == set()
        assert attached(session, album, row.id) == set()


def test_a_list_taken_from_a_row_nothing_else_holds_still_reaches_it(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        session.add(album(id=1))
        session.commit()
    with Session(engine) as session:
        session.get(album, 1).photos.append(b"appended")  # the row is referenced by nothing
        gc.collect()
        session.commit()
        assert contents(session.get(album, 1)) == [b"appended"]
    assert len(depot.stored()) == 1


def test_rollback_removes_the_items_added_and_keeps_those_removed(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album(photos=[b"kept", b"removed"])
        session.add(row)
        session.commit()
        before = depot.stored()
        row.photos.append(b"added")
        row.photos.pop(1)
        session.flush()
        assert len(depot.stored()) == 3
        session.rollback()
        assert depot.stored() == before
        assert contents(row) == [b"kept", b"removed"]  # reloaded as committed
        row.photos.append(b"never flushed")
        session.rollback()
        assert depot.stored() == before
    assert journal(engine) == []


def test_a_savepoint_rolled_back_undoes_only_its_own_items(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album(photos=[b"committed"])
        session.add(row)
        session.commit()
        committed = row.photos[0].path
        row.photos.append(b"outer")
        session.flush()
        outer = row.photos[1].path
        savepoint = session.begin_nested()
        row.photos.append(b"inner")
        del row.photos[0]
        session.flush()
        inner = row.photos[-1].path
        savepoint.rollback()
        assert inner not in depot.stored()
        assert [p.path for p in row.photos] == [committed, outer]
        session.commit()
    assert depot.stored() == {committed, outer}
    assert journal(engine) == []


def test_deleting_the_row_removes_every_item_after_commit(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album(photos=[b"a", b"b", b"c"])
        keep = album(photos=[b"other row"])
        session.add_all([row, keep])
        session.commit()
        kept = paths(keep)
        session.delete(row)
        session.flush()
        assert len(depot.stored()) == 4
        session.commit()
    assert depot.stored() == kept


def test_an_item_another_row_holds_is_copied(engine: sa.Engine, album: Any, depot: Depot) -> None:
    with Session(engine) as session:
        first = album(photos=[b"shared?"])
        session.add(first)
        session.commit()
        second = album()
        second.photos.append(first.photos[0])  # a loaded descriptor: the row gets a copy
        moved = album(photos=[first.photos.pop()])  # moved away in the same transaction
        session.add_all([second, moved])
        session.commit()
        assert first.photos == []
        assert contents(second) == contents(moved) == [b"shared?"]
        assert len({*paths(second), *paths(moved)}) == 2
        assert depot.stored() == paths(second) | paths(moved)
        fresh = UploadedFile(b"fresh")  # claimed by the first list that writes it
        second.photos.append(fresh)
        moved.photos.append(fresh)
        session.commit()
        assert second.photos[-1].path == fresh.path != moved.photos[-1].path
        assert depot.stored() == paths(second) | paths(moved)


def test_an_item_at_two_places_stays_while_one_holds_it(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album(photos=[b"twice"])
        session.add(row)
        session.commit()
        row.photos.append(row.photos[0])
        session.commit()
        del row.photos[0]
        session.commit()
        assert contents(row) == [b"twice"]
        assert depot.stored() == paths(row) == attached(session, album, row.id)


def test_a_refused_item_leaves_the_list_and_the_storage_as_they_were(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album(photos=[b"fine"])
        session.add(row)
        session.commit()
        before = depot.stored()
        with pytest.raises(ValidationFailed) as raised:
            row.photos.extend([b"ok", b"x" * 101])
        assert raised.value.violations[0].field == "Album.photos"
        with pytest.raises(ValidationFailed):
            row.photos = [b"ok", b"x" * 101]
        assert contents(row) == [b"fine"] and depot.stored() == before
        session.commit()
    assert depot.stored() == before


def test_statements_write_lists_and_the_registry_follows(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        session.execute(sa.insert(album).values(id=1, photos=[UploadedFile(b"core a")]))
        session.commit()
        assert depot.stored() == attached(session, album, 1)
        old = depot.stored()
        kept = session.get(album, 1).photos[0]
        statement = sa.update(album).where(album.id == 1)
        session.execute(statement.values(photos=[kept, UploadedFile(b"core b")]))
        session.commit()
        assert old < depot.stored() == attached(session, album, 1)
        session.execute(sa.update(album).where(album.id == 1).values(photos=[]))
        session.commit()
    assert depot.stored() == set() and journal(engine) == []


def test_the_collector_keeps_list_items_and_sweeps_what_raw_sql_dropped(
    engine: sa.Engine, album: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        row = album(photos=[b"a", b"b"])
        gone = album(photos=[b"c"])
        session.add_all([row, gone])
        session.commit()
        kept = paths(row)
        gone_id = gone.id
    with engine.begin() as conn:  # what no event sees
        conn.execute(sa.text(f"DELETE FROM {album.__tablename__} WHERE id = {gone_id}"))
    report = collect(engine, album.metadata, grace=timedelta(0))
    assert report.ok
    assert depot.stored() == kept


def test_the_child_table_pattern_of_filedepot_applications(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    """One UploadedFileField per child row, a list of children per parent."""
    with Session(engine) as session:
        doc = models.Document(name="parent")
        doc.attachments.extend([models.Attachment(file=b"one"), models.Attachment(file=b"two")])
        session.add(doc)
        session.commit()
        one, two = (a.file.path for a in doc.attachments)
        doc.attachments.append(models.Attachment(file=b"three"))
        doc.attachments.pop(0)  # delete-orphan: the child row and its file go
        doc.attachments[0].file = b"two again"
        session.flush()
        session.rollback()
        assert depot.stored() == {one, two}
        doc.attachments.pop(0)
        doc.attachments.append(models.Attachment(file=b"three"))
        session.commit()
        assert depot.stored() == {a.file.path for a in doc.attachments}
        assert two in depot.stored() and one not in depot.stored()
