"""The journal rows of files removed after a commit are deleted in batches, not by a
transaction of their own after every commit; a row whose file is already gone is harmless."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.database import journal
from sa_depot.schema import pending_removals
from tests.orm.conftest import Depot, Models


def _rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.select(pending_removals.c.path)))


def test_a_deleting_commit_runs_one_transaction_and_the_rows_go_in_a_batch(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        docs = [models.Document(name=str(i), content=f"{i}".encode()) for i in range(3)]
        session.add_all(docs)
        session.commit()
        paths = sorted(path for doc in docs for path in doc.content.files)  # type: ignore[union-attr]
    commits: list[object] = []

    def count(conn: sa.Connection) -> None:
        commits.append(conn)

    sa.event.listen(engine, "commit", count)
    try:
        with Session(engine) as session:
            for doc in session.scalars(sa.select(models.Document)):
                session.delete(doc)
            session.commit()
    finally:
        sa.event.remove(engine, "commit", count)
    assert len(commits) == 1  # the deletions' own commit, and no second one for the journal
    assert depot.stored() == set()  # the files are removed at once
    assert _rows(engine) == paths  # their rows wait: harmless, the files are gone
    report = journal.finish_pending_removals(engine)  # what the collector would do
    assert report.failed == [] and _rows(engine) == []


def test_pending_lists_only_what_is_really_pending(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"a")
        session.add(doc)
        session.commit()
        session.delete(doc)
        session.commit()
    assert journal.pending(engine) == []
    assert _rows(engine) == []


def test_the_rows_are_deleted_once_enough_files_were_removed(
    engine: sa.Engine, models: Models, depot: Depot
) -> None:
    count = journal.DEFERRED_LIMIT
    with Session(engine) as session:
        session.add_all(models.Document(name=str(i), content=b"x") for i in range(count))
        session.commit()
    with Session(engine) as session:
        for doc in session.scalars(sa.select(models.Document)):
            session.delete(doc)
        session.commit()
    assert _rows(engine) == []
    assert depot.stored() == set()
