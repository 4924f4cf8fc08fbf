"""Promotions survive kill -9 against PostgreSQL: the web process killed after its commit, the
worker killed at each moment of a promotion. Afterwards a restarted worker, or the collector,
finishes the promotion; nothing is lost (the row reads its content back from the public
storage) and nothing leaks (after the collector: the storages hold exactly the rows' files,
the journals are empty). Before that, the collector never removes the queued file a row uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.collector import collect
from sa_depot.database import promotions as journal
from sa_depot.fields import lifecycle
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import Outcome, is_queued, promote
from tests.crash.harness import kill_when_ready
from tests.crash.promotion_child import Ignoring, PromotionApp, add_photo, build


@dataclass
class Env:
    db_url: str
    storage_dir: Path
    prefix: str
    app: PromotionApp
    engine: sa.Engine
    tmp: Path

    def kill_child(self, scenario: str) -> None:
        kill_when_ready(
            "tests.crash.promotion_child",
            scenario,
            self.db_url,
            str(self.storage_dir),
            self.prefix,
            log=self.tmp / f"{scenario}.log",
        )


@pytest.fixture
def env(pg_url: str, tmp_path: Path) -> Iterator[Env]:
    prefix = f"promo_{uuid.uuid4().hex[:8]}"
    storage_dir = tmp_path / "files"
    app = build(prefix, str(storage_dir))
    engine = sa.create_engine(pg_url)
    schema.metadata.create_all(engine)
    app.metadata.create_all(engine)
    dispatch.set_executor(Ignoring())  # this process promotes only when a test says so
    try:
        yield Env(pg_url, storage_dir, prefix, app, engine, tmp_path)
    finally:
        dispatch.set_executor(None)
        app.metadata.drop_all(engine)
        schema.metadata.drop_all(engine)
        engine.dispose()
        app.Base.registry.dispose()
        lifecycle.uninstall()


def stored(name: str) -> set[str]:
    return {f"{name}/{i}" for i in DepotManager.get(name).list()}


def photos(env: Env) -> dict[str, object]:
    with Session(env.engine) as session:
        return {p.name: p.image for p in session.scalars(sa.select(env.app.Photo))}


def recover(env: Env, how: str) -> None:
    if how == "worker":  # a restarted worker runs what the journal holds
        for path in journal.due(env.engine):
            assert promote(env.engine, path) is Outcome.PROMOTED
    else:  # the collector runs promotions stalled longer than its grace period
        report = collect(
            env.engine,
            env.app.metadata,
            grace=timedelta(0),
            promoter=partial(promote, env.engine),
            sweep=False,
        )
        assert [outcome for _, outcome in report.promotions] == ["promoted"], report.summary()


def assert_consistent(env: Env, expected_names: set[str]) -> None:
    """Every row holds a promoted file that reads back; after the collector the storages hold
    exactly the rows' files and every journal is empty."""
    report = collect(env.engine, env.app.metadata, grace=timedelta(0))
    assert report.ok and report.missing == [], report.summary()
    rows = photos(env)
    assert set(rows) == expected_names
    files: set[str] = set()
    for name, image in rows.items():
        assert image is not None and not is_queued(image)  # type: ignore[arg-type]
        assert image.depot_name == "public"  # type: ignore[attr-defined]
        with image.file as f:  # type: ignore[attr-defined]
            assert f.read() == f"Photo {name}".encode() * 100
        files |= set(image.files)  # type: ignore[attr-defined]
    assert stored("public") == files and len(files) == 2 * len(rows)
    assert stored("queue") == set()
    assert journal.listing(env.engine) == []
    with env.engine.connect() as conn:
        assert conn.execute(sa.select(schema.pending_removals)).all() == []
        assert set(conn.execute(sa.select(schema.files.c.path)).scalars()) == files


def assert_queued_file_survives_the_collector(env: Env) -> None:
    """The collector (grace 0, no promoter) keeps the queued file the row uses."""
    [image] = photos(env).values()
    assert image is not None and is_queued(image)  # type: ignore[arg-type]
    collect(env.engine, env.app.metadata, grace=timedelta(0))
    assert image.path in stored("queue")  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["worker", "collector"])
def test_web_process_killed_after_the_commit(env: Env, how: str) -> None:
    env.kill_child("web_after_commit")
    [row] = journal.listing(env.engine)
    assert row.state == "queued" and row.path in stored("queue")
    assert_queued_file_survives_the_collector(env)
    recover(env, how)
    assert_consistent(env, {"crashed"})


@pytest.mark.parametrize(
    "scenario", ["worker_in_filters", "worker_before_swap_commit", "worker_after_swap_commit"]
)
@pytest.mark.parametrize("how", ["worker", "collector"])
def test_worker_killed_mid_promotion(env: Env, scenario: str, how: str) -> None:
    add_photo(env.engine, env.app, "photo")
    env.kill_child(scenario)
    if scenario == "worker_after_swap_commit":  # promoted; only the queued file's removal
        assert journal.listing(env.engine) == []  # was cut short: the removal journal has it
        [image] = photos(env).values()
        assert image is not None and not is_queued(image)  # type: ignore[arg-type]
    else:
        assert len(stored("public")) == 2  # the killed attempt's copies: orphans for now
        assert_queued_file_survives_the_collector(env)
        recover(env, how)
    assert_consistent(env, {"photo"})
