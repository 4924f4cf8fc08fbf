"""Guarantee 4 (crash), with real processes: a child working against PostgreSQL is killed with
SIGKILL at each dangerous moment; then no committed row points at a missing file, and the
collector leaves no unreferenced file behind.

The child is ``tests/crash/child.py``; it prints ``READY`` at its crash point and the parent
kills it from outside (``kill -9``), so nothing in the child (no ``finally``, no atexit hook,
no garbage collection) runs after that point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.collector import collect
from tests.crash.app import Audit, audit
from tests.crash.conftest import CrashEnv
from tests.crash.harness import kill_when_ready

SEEDS = 4


def seed(env: CrashEnv) -> dict[str, str]:
    """Documents ``seed-0..3``, each with a file (plus its derivative) and an attachment;
    returns name -> checksum of the document's file."""
    app = env.app
    with Session(env.engine) as session:
        docs = []
        for n in range(SEEDS):
            doc = app.Document(name=f"seed-{n}", content=f"seed {n} ".encode() * 500)
            doc.attachments.append(app.Attachment(file=f"attachment {n}".encode()))
            docs.append(doc)
        session.add_all(docs)
        session.commit()
        return {d.name: d.content.checksum for d in docs}


def documents(env: CrashEnv) -> dict[str, str | None]:
    """name -> checksum of the committed documents."""
    with Session(env.engine) as session:
        rows = session.scalars(sa.select(env.app.Document)).all()
        return {d.name: d.content.checksum if d.content else None for d in rows}


def attachments(env: CrashEnv) -> int:
    with env.engine.connect() as conn:
        table = env.app.Attachment.__table__
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@dataclass(frozen=True)
class Scenario:
    name: str
    #: Seeds expected afterwards with their original file; the others changed or went.
    unchanged: frozenset[str]
    #: Names of documents expected afterwards.
    names: frozenset[str]
    attachments: int
    #: Files the crash must have left for the collector: journal rows, stored files no row
    #: references (outside the journal), leftovers of an interrupted write.
    journal: int
    orphans_outside_journal: int
    leftovers: bool = False


ALL = frozenset(f"seed-{n}" for n in range(SEEDS))
SCENARIOS = [
    # Killed after the upload (and the flush) and before the commit: the transaction dies
    # with the connection; the new files (content, derivative, attachment) are orphans.
    Scenario("upload_before_commit", ALL, ALL, SEEDS, journal=0, orphans_outside_journal=3),
    Scenario("replace_before_commit", ALL, ALL, SEEDS, journal=0, orphans_outside_journal=2),
    Scenario("delete_before_commit", ALL, ALL, SEEDS, journal=0, orphans_outside_journal=0),
    Scenario(
        "savepoint_released_before_commit",
        ALL,
        ALL,
        SEEDS,
        journal=0,
        orphans_outside_journal=4,
    ),
    # Killed after the commit and before the old files are removed: the journal lists them.
    Scenario(
        "replace_after_commit",
        ALL - {"seed-0"},
        ALL,
        SEEDS,
        journal=2,
        orphans_outside_journal=0,
    ),
    Scenario(
        "delete_after_commit",
        ALL - {"seed-1"},
        ALL - {"seed-1"},
        SEEDS - 1,
        journal=3,
        orphans_outside_journal=0,
    ),
    Scenario(
        "bulk_delete",
        ALL - {"seed-2"},
        ALL - {"seed-2"},
        0,
        journal=SEEDS + 2,
        orphans_outside_journal=0,
    ),
    # Killed after three of the six old files were removed: their journal rows remain.
    Scenario(
        "midway_through_removals",
        frozenset({"seed-3"}),
        ALL,
        SEEDS,
        journal=6,
        orphans_outside_journal=0,
    ),
    # A file list: items appended and flushed, then killed (orphans); an item removed and
    # committed, then killed before its file is removed (the journal lists it).
    Scenario("list_append_before_commit", ALL, ALL, SEEDS, journal=0, orphans_outside_journal=2),
    Scenario("list_remove_after_commit", ALL, ALL, SEEDS, journal=1, orphans_outside_journal=0),
    # Killed while streaming a 64 MiB file (8 MiB written): a partial blob on disk.
    Scenario("mid_upload", ALL, ALL, SEEDS, journal=0, orphans_outside_journal=0, leftovers=True),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_kill_9_then_collect(crash_env: CrashEnv, scenario: Scenario) -> None:
    seeded = seed(crash_env)
    kill_when_ready(
        "tests.crash.child",
        scenario.name,
        *crash_env.child_args(),
        log=crash_env.tmp / "child.log",
    )

    # Before any collection: every committed row's files exist and read back (checksums).
    before = audit(crash_env.engine, crash_env.app)
    print(f"\n{scenario.name}: after kill -9: {before.counts()}")
    assert before.missing == []
    after_kill = documents(crash_env)
    assert set(after_kill) == scenario.names
    assert {n for n in scenario.names if after_kill[n] == seeded.get(n)} == scenario.unchanged
    assert attachments(crash_env) == scenario.attachments
    # The crash did leave the debris this scenario is about (else the test proves nothing).
    assert before.journal_rows == scenario.journal
    assert len(before.orphans) == scenario.orphans_outside_journal + _journaled_present(
        crash_env, before
    )
    assert bool(before.leftovers) == scenario.leftovers

    # With the default grace, the journal is finished but the young orphans are kept: they
    # look like the uploads of a transaction still in flight.
    report = collect(crash_env.engine, crash_env.app.metadata)
    mid = audit(crash_env.engine, crash_env.app)
    print(f"{scenario.name}: after collect(grace=24h): {mid.counts()}")
    assert mid.missing == [] and mid.journal_rows == 0
    assert len(report.too_young) == len(mid.orphans) == scenario.orphans_outside_journal
    assert bool(mid.leftovers) == scenario.leftovers

    # Past the grace period (grace=0 here), nothing unreferenced is left.
    report = collect(crash_env.engine, crash_env.app.metadata, grace=timedelta(0))
    after = audit(crash_env.engine, crash_env.app)
    print(f"{scenario.name}: after collect(grace=0): {after.counts()}")
    assert report.ok and report.missing == []
    assert after.missing == [] and after.orphans == [] and after.leftovers == []
    assert after.journal_rows == 0
    assert after.referenced == before.referenced  # no referenced file was touched
    assert documents(crash_env) == after_kill


def _journaled_present(env: CrashEnv, before: Audit) -> int:
    """How many of the orphans are listed in the journal (files removed before the crash
    are not orphans any more)."""
    from sa_depot.schema import pending_removals

    with env.engine.connect() as conn:
        paths = set(conn.execute(sa.select(pending_removals.c.path)).scalars())
    return len(paths & set(before.orphans))
