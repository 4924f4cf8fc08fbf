"""One stored file, one row: a descriptor written into a second row gets a copy of its own, so
that removing either row's file never breaks the other (guarantee 5)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.exceptions import FileNotFound
from sa_depot.fields.upload import UploadedFile
from tests.orm.conftest import Depot, Models


def read(depot: Depot, uploaded: UploadedFile | None) -> bytes:
    assert uploaded is not None
    return depot.read(uploaded)


def by_name(session: Session, models: Models, name: str) -> object:
    return session.scalars(sa.select(models.Document).where(models.Document.name == name)).one()


def test_one_uploaded_file_assigned_to_two_rows(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    shared = UploadedFile(b"shared")
    with Session(engine) as session:
        a = models.Document(name="a", content=shared)
        b = models.Document(name="b", content=shared)
        session.add_all([a, b])
        session.commit()
        assert a.content.path != b.content.path  # type: ignore[union-attr]
        assert read(depot, a.content) == read(depot, b.content) == b"shared"
        assert len(depot.stored()) == 2
        session.delete(a)
        session.commit()
        assert read(depot, b.content) == b"shared"
        session.delete(b)
        session.commit()
    assert depot.stored() == set()


def test_assigning_another_rows_loaded_value_copies_it(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        session.add(models.Document(name="a", content=b"from a"))
        session.commit()
    with Session(engine) as session:
        a = by_name(session, models, "a")
        b = models.Document(name="b", content=a.content)  # type: ignore[attr-defined]
        session.add(b)
        session.commit()
        a.content = b"a changed"  # type: ignore[attr-defined]
        session.commit()
        assert read(depot, b.content) == b"from a"
        session.delete(a)
        session.commit()
        assert read(depot, b.content) == b"from a"
        assert depot.stored() == set(b.content.files)  # type: ignore[union-attr]


def test_moving_a_file_from_one_row_to_another_in_one_transaction(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        a = models.Document(name="a", content=b"moving")
        session.add(a)
        session.commit()
        b = models.Document(name="b", content=a.content)
        a.content = None
        session.add(b)
        session.commit()
        assert a.content is None
        assert read(depot, b.content) == b"moving"
        assert depot.stored() == set(b.content.files)  # type: ignore[union-attr]


def test_reassigning_the_rows_own_value_changes_nothing(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        a = models.Document(name="a", content=b"mine")
        session.add(a)
        session.commit()
        files = depot.stored()
        a.content = a.content
        session.commit()
        session.expire_all()
        a.content = UploadedFile(dict(a.content))  # an equal descriptor, another object
        session.commit()
        assert depot.stored() == files
        assert read(depot, a.content) == b"mine"


def test_a_value_replaced_then_put_back_in_one_transaction_survives(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        first = UploadedFile(b"first")
        a = models.Document(name="a", content=first)
        session.add(a)
        session.flush()
        a.content = b"second"
        session.flush()  # schedules the removal of "first"
        a.content = first
        session.commit()
        session.expire_all()
        assert read(depot, a.content) == b"first"
        assert depot.stored() == set(a.content.files)  # type: ignore[union-attr]


def test_a_descriptor_from_another_session_whose_file_is_gone_fails_at_flush(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        session.add(models.Document(name="a", content=b"old"))
        session.commit()
    with Session(engine) as stale, Session(engine) as fresh:
        old_value = by_name(stale, models, "a").content  # type: ignore[attr-defined]
        stale.commit()  # (SQLite would otherwise block the other session's write)
        by_name(fresh, models, "a").content = b"new"  # type: ignore[attr-defined]
        fresh.commit()  # removes "old"
        stale.add(models.Document(name="b", content=old_value))
        with pytest.raises(FileNotFound):
            stale.flush()
        stale.rollback()
    with Session(engine) as session:
        a = by_name(session, models, "a")
        assert read(depot, a.content) == b"new"  # type: ignore[attr-defined]
        assert depot.stored() == set(a.content.files)  # type: ignore[attr-defined]
