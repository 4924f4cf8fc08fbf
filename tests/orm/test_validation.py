"""Validators declared on the field, applied to every way content reaches a row: assignment of
content, ``UploadedFile.of(content)``, a fresh ``UploadedFile(content)`` assigned or written by
an ORM-enabled or Core statement, and the copy a row makes of another row's file. A refused
file is not stored and the transaction goes on, or rolls back, as if nothing happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot.exceptions import ValidationFailed
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.io.validation import MaxSize
from tests.orm.conftest import Depot, unique
from tests.test_validation import CASES


@pytest.fixture(scope="module")
def Checked() -> Iterator[Any]:
    """One file column per validator of tests/test_validation.py, and one without any."""

    class Base(DeclarativeBase):
        pass

    columns: dict[str, Any] = {
        "__tablename__": unique("checked"),
        "id": mapped_column(sa.Integer, primary_key=True),
        "free": mapped_column(UploadedFileField(), nullable=True),
        "__annotations__": {"id": Mapped[int], "free": Mapped[UploadedFile | None]},
    }
    for rule, case in CASES.items():
        columns[rule] = mapped_column(UploadedFileField(validators=[case.validator]))
        columns["__annotations__"][rule] = Mapped[UploadedFile | None]
    yield type("Checked", (Base,), columns)
    Base.registry.dispose()


@pytest.fixture
def checked(engine: sa.Engine, depot: Depot, Checked: Any) -> Iterator[Any]:
    Checked.metadata.create_all(engine)
    yield Checked
    Checked.metadata.drop_all(engine)


def intent(data: bytes, filename: str) -> FileIntent:
    return FileIntent(data, filename, None)


def _assign(value: Callable[[bytes, str], Any]) -> Callable[..., Any]:
    def write(session: Session, model: Any, rule: str, data: bytes, filename: str) -> None:
        row = model()
        session.add(row)
        setattr(row, rule, value(data, filename))
        session.flush()

    return write


def _orm_insert(session: Session, model: Any, rule: str, data: bytes, filename: str) -> None:
    session.execute(sa.insert(model).values({rule: UploadedFile(intent(data, filename))}))


def _orm_update(session: Session, model: Any, rule: str, data: bytes, filename: str) -> None:
    row = model()
    session.add(row)
    session.flush()
    statement = sa.update(model).where(model.id == row.id)
    session.execute(statement.values({rule: UploadedFile(intent(data, filename))}))


#: How content reaches a row.
WAYS: dict[str, Callable[..., None]] = {
    "content": _assign(intent),
    "UploadedFile.of": _assign(lambda data, name: UploadedFile.of(data, name)),
    "UploadedFile": _assign(lambda data, name: UploadedFile(intent(data, name))),
    "orm_insert": _orm_insert,
    "orm_update": _orm_update,
}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("rule", CASES)
def test_every_validator_on_every_way_into_a_row(
    engine: sa.Engine, depot: Depot, checked: Any, rule: str, way: str
) -> None:
    case = CASES[rule]
    with Session(engine) as session:
        WAYS[way](session, checked, rule, *case.good)
        session.commit()
        stored = depot.stored()
        assert len(stored) == 1
        with pytest.raises(ValidationFailed) as raised:
            WAYS[way](session, checked, rule, *case.bad)
        assert {v.rule for v in raised.value.violations} == case.rules
        assert {v.field for v in raised.value.violations} == {f"Checked.{rule}"}
        assert depot.stored() == stored  # nothing of the refused file
        session.rollback()
    assert depot.stored() == stored


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_core_statement_refuses_a_fresh_upload_that_breaks_the_column(
    engine: sa.Engine, depot: Depot, checked: Any
) -> None:
    case = CASES["max_size"]
    with engine.begin() as conn:
        conn.execute(checked.__table__.insert().values(max_size=UploadedFile(intent(*case.good))))
    stored = depot.stored()
    with engine.begin() as conn, pytest.raises(sa.exc.StatementError) as raised:
        conn.execute(checked.__table__.insert().values(max_size=UploadedFile(intent(*case.bad))))
    assert isinstance(raised.value.orig, ValidationFailed)
    assert depot.stored() == stored


def test_after_a_refusal_the_transaction_goes_on_or_rolls_back(
    engine: sa.Engine, depot: Depot, checked: Any
) -> None:
    case = CASES["content_type"]
    with Session(engine) as session:
        row = checked(free=b"kept")
        session.add(row)
        session.flush()  # the transaction has written something already
        with pytest.raises(ValidationFailed):
            row.content_type = intent(*case.bad)
        assert row.content_type is None
        row.content_type = intent(*case.good)
        session.commit()
        assert depot.read(row.content_type) == case.good[0]
        assert depot.stored() == {*row.free.files, *row.content_type.files}

    with Session(engine) as session:
        other = checked(free=b"rolled back")
        session.add(other)
        session.flush()
        with pytest.raises(ValidationFailed):
            other.content_type = intent(*case.bad)
        session.rollback()
    assert depot.stored() == {*row.free.files, *row.content_type.files}


def test_a_copy_of_another_rows_file_is_checked_by_the_field_it_goes_to(
    engine: sa.Engine, depot: Depot, checked: Any
) -> None:
    case = CASES["min_size"]
    with Session(engine) as session:
        source = checked(free=intent(*case.bad))
        session.add(source)
        session.commit()
        before = depot.stored()
        session.add(checked(min_size=source.free))  # another row's file: copied at the flush
        with pytest.raises(ValidationFailed) as raised:
            session.flush()
        assert raised.value.violations[0].field == "Checked.min_size"
        session.rollback()
    assert depot.stored() == before


def test_a_field_checks_each_upload_once(
    engine: sa.Engine, depot: Depot, checked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[object] = []
    monkeypatch.setattr(MaxSize, "check_end", lambda self, c: checks.append(c) or ())
    with Session(engine) as session:
        row = checked(max_size=intent(*CASES["max_size"].good))
        session.add(row)
        session.commit()
    assert len(checks) == 1  # while streaming; not again at the flush nor at the bind
