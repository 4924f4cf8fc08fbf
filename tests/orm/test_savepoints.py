"""SAVEPOINTs (``session.begin_nested()``): rolling one back removes only what was uploaded
inside it and cancels only the removals scheduled inside it. The outer transaction's files,
and the committed ones, stay. Run on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import itertools
import random

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.orm.conftest import Depot, Models


def rows(session: Session, models: Models) -> dict[str, bytes | None]:
    """name -> content of every committed document, read back from storage."""
    result: dict[str, bytes | None] = {}
    for doc in session.scalars(sa.select(models.Document)):
        if doc.content is None:
            result[doc.name] = None
        else:
            with doc.content.file as stored:
                data = stored.read()
            assert doc.content.checksum is not None
            result[doc.name] = data
    return result


def referenced(session: Session, models: Models) -> set[str]:
    """Every path a committed row (document or attachment) references."""
    values = [*session.scalars(sa.select(models.Document.content))]
    values += session.scalars(sa.select(models.Attachment.file))
    return {path for value in values if value is not None for path in value.files}


def assert_consistent(engine: sa.Engine, models: Models, depot: Depot) -> dict[str, bytes | None]:
    """Every committed row's file exists and nothing else is stored; return the rows."""
    with Session(engine) as session:
        found = rows(session, models)
        assert depot.stored() == referenced(session, models)
    return found


@pytest.mark.parametrize("root", ["commit", "rollback"])
@pytest.mark.parametrize(
    "outcomes",
    list(itertools.product(["release", "rollback"], repeat=3)),
    ids=lambda o: "-".join(o),
)
def test_three_nested_savepoints_closed_every_way(
    engine: sa.Engine, models: Models, depot: Depot, outcomes: tuple[str, ...], root: str
) -> None:
    with Session(engine) as session:
        shared = models.Document(name="shared", content=b"committed")
        session.add(shared)
        session.commit()

        session.add(models.Document(name="root", content=b"root"))
        shared.content = b"root version"
        session.flush()
        savepoints = []
        for depth in (1, 2, 3):
            savepoints.append(session.begin_nested())
            session.add(models.Document(name=f"level{depth}", content=f"level{depth}".encode()))
            shared.content = f"level{depth} version".encode()
            session.flush()
        for depth in (3, 2, 1):
            savepoint = savepoints[depth - 1]
            if outcomes[depth - 1] == "release":
                savepoint.commit()
            else:
                savepoint.rollback()
        if root == "commit":
            session.commit()
        else:
            session.rollback()

    expected: dict[str, bytes | None] = {"shared": b"committed"}
    if root == "commit":
        expected["root"] = b"root"
        expected["shared"] = b"root version"
        for depth in (1, 2, 3):
            if all(o == "release" for o in outcomes[:depth]):
                expected[f"level{depth}"] = f"level{depth}".encode()
                expected["shared"] = f"level{depth} version".encode()
    assert assert_consistent(engine, models, depot) == expected


def test_rolling_back_a_savepoint_keeps_the_outer_transactions_uploads(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    """The case filedepot, sqlalchemy-file and SQLAlchemy-Media get wrong."""
    with Session(engine) as session:
        outer = models.Document(name="outer", content=b"outer upload")
        session.add(outer)
        session.flush()
        outer_files = set(outer.content.files)  # type: ignore[union-attr]
        with pytest.raises(RuntimeError), session.begin_nested():
            outer.content = b"inner replacement"
            session.add(models.Document(name="inner", content=b"inner upload"))
            session.flush()
            raise RuntimeError("roll the savepoint back")
        assert depot.stored() == outer_files
        session.commit()
    assert assert_consistent(engine, models, depot) == {"outer": b"outer upload"}


def test_a_deletion_rolled_back_with_its_savepoint_is_cancelled(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"keep me")
        doc.attachments = [models.Attachment(file=b"attachment")]
        session.add(doc)
        session.commit()
        savepoint = session.begin_nested()
        session.delete(doc)
        session.flush()
        savepoint.rollback()
        savepoint = session.begin_nested()
        doc.content = None
        session.flush()
        savepoint.rollback()
        session.commit()
    assert assert_consistent(engine, models, depot) == {"a": b"keep me"}
    assert len(depot.stored()) == 2


def test_integrity_error_inside_a_savepoint_only_loses_the_savepoint(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        session.add(models.Document(name="taken", content=b"first"))
        session.flush()
        with pytest.raises(sa.exc.IntegrityError), session.begin_nested():
            session.add(models.Document(name="taken", content=b"duplicate"))
            session.flush()
        session.add(models.Document(name="after", content=b"after"))
        session.commit()
    assert assert_consistent(engine, models, depot) == {"taken": b"first", "after": b"after"}


def test_sibling_savepoints(engine: sa.Engine, models: Models, depot: Depot) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"v0")
        session.add(doc)
        session.commit()
        with session.begin_nested():
            doc.content = b"v1"
        with pytest.raises(RuntimeError), session.begin_nested():
            doc.content = b"v2"
            session.flush()
            raise RuntimeError
        with session.begin_nested():
            doc.content = b"v3"
            with pytest.raises(RuntimeError), session.begin_nested():
                doc.content = b"v4"
                session.flush()
                raise RuntimeError
        session.commit()
    assert assert_consistent(engine, models, depot) == {"a": b"v3"}


@pytest.mark.parametrize("seed", range(6))
def test_random_walks_agree_with_a_model(
    engine: sa.Engine, models: Models, depot: Depot, seed: int
) -> None:
    """Random creates, replaces, clears and deletes across savepoints opened, released and
    rolled back at random; the files must follow a simple model of the committed rows."""
    rng = random.Random(seed)
    model: dict[str, bytes | None] = {}
    stack: list[dict[str, bytes | None]] = []
    counter = itertools.count()
    with Session(engine) as session:
        savepoints = []
        for _ in range(40):
            action = rng.choice(["create", "replace", "clear", "delete", "begin", "end", "flush"])
            names = sorted(model)
            if action == "create" or (action in {"replace", "clear", "delete"} and not names):
                name, data = f"d{next(counter)}", f"c{next(counter)}".encode()
                session.add(models.Document(name=name, content=data))
                model[name] = data
            elif action in {"replace", "clear", "delete"}:
                name = rng.choice(names)
                doc = session.scalars(
                    sa.select(models.Document).where(models.Document.name == name)
                ).one()
                if action == "delete":
                    session.delete(doc)
                    del model[name]
                else:
                    data = f"c{next(counter)}".encode() if action == "replace" else None
                    doc.content = data
                    model[name] = data
            elif action == "begin" and len(savepoints) < 4:
                savepoints.append(session.begin_nested())
                stack.append(dict(model))
            elif action == "end" and savepoints:
                savepoint = savepoints.pop()
                snapshot = stack.pop()
                if rng.random() < 0.5:
                    savepoint.commit()
                else:
                    savepoint.rollback()
                    model = snapshot
            else:
                session.flush()
        while savepoints:
            savepoints.pop().commit()
        session.commit()
    assert assert_consistent(engine, models, depot) == model
