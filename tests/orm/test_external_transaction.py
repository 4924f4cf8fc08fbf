"""A Session joined to a transaction it does not own (``Session(bind=connection)`` inside
``connection.begin()``, the usual test-suite recipe): its commit is not final, so no file may
be removed until the outer transaction's fate is known. The journal rows share that fate and
the collector finishes them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.database import journal
from sa_depot.database.journal import flush_completed
from sa_depot.schema import pending_removals
from tests.orm.conftest import Depot, Models


@pytest.mark.parametrize("mode", ["create_savepoint", "conditional_savepoint"])
@pytest.mark.parametrize("outcome", ["rollback", "commit"])
def test_files_wait_for_the_outer_transaction(
    engine: sa.Engine, models: Models, depot: Depot, mode: str, outcome: str
) -> None:
    with Session(engine) as session:
        doc = models.Document(name="a", content=b"v1")
        session.add(doc)
        session.commit()
        doc_id, v1 = doc.id, doc.content.path  # type: ignore[union-attr]

    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode=mode)  # type: ignore[arg-type]
        joined = session.get(models.Document, doc_id)
        assert joined is not None
        joined.content = b"v2"
        session.commit()
        assert v1 in depot.stored()  # the outer transaction may still roll back
        session.close()
        if outcome == "rollback":
            outer.rollback()
        else:
            outer.commit()

    with Session(engine) as session:
        row = session.get(models.Document, doc_id)
        assert row is not None and row.content is not None
        assert depot.read(row.content) == (b"v1" if outcome == "rollback" else b"v2")
        files = set(row.content.files)
    flush_completed(engine)  # rows of files removed are deleted in batches
    with engine.connect() as conn:
        listed = list(conn.execute(sa.select(pending_removals.c.path)).scalars())
    if outcome == "rollback":
        assert listed == []  # the journal row went with the outer transaction
    else:
        assert listed == [v1]
        journal.finish_pending_removals(engine)  # what the collector does
        assert depot.stored() == files
