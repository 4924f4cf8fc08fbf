"""Two sessions on one row: the session that writes last replaces (or deletes) the file the
row holds *now*, not the one it loaded. Without reading the current value under a row lock,
the file committed by the other session in between would be left unreferenced (found in the
soak test: dozens of orphans per minute)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.fields import lifecycle
from tests.crash.app import App, audit, build


@pytest.fixture(params=["pg_url", "mariadb_url"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, App]]:
    url = request.getfixturevalue(request.param)
    app = build(f"stale_{request.param[:2]}_{tmp_path.name[-6:]}", str(tmp_path / "files"))
    engine = sa.create_engine(url)
    schema.metadata.create_all(engine)
    app.metadata.create_all(engine)
    yield engine, app
    app.metadata.drop_all(engine)
    schema.metadata.drop_all(engine)
    engine.dispose()
    app.Base.registry.dispose()
    lifecycle.uninstall()


@pytest.mark.parametrize("last_write", ["replace", "clear", "delete"])
def test_the_last_writer_removes_the_file_the_row_holds_now(
    setup: tuple[sa.Engine, App], last_write: str
) -> None:
    engine, app = setup
    with Session(engine) as session:
        session.add(app.Document(name="x", content=b"v0"))
        session.commit()
    with Session(engine) as late:
        stale = late.scalars(sa.select(app.Document)).one()
        assert stale.content is not None  # loaded: v0
        with Session(engine) as early:
            early.scalars(sa.select(app.Document)).one().content = b"v1"
            early.commit()
        if last_write == "replace":
            stale.content = b"v2"
        elif last_write == "clear":
            stale.content = None
        else:
            late.delete(stale)
        late.commit()
    state = audit(engine, app)
    assert state.missing == [] and state.journal_rows == 0
    assert state.orphans == []  # v1 and its derivative were removed with the commit
    assert state.referenced == (2 if last_write == "replace" else 0)
