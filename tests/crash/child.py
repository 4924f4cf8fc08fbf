"""A process the crash tests kill with SIGKILL at a dangerous moment.

``python -m tests.crash.child SCENARIO DB_URL STORAGE_DIR PREFIX`` works on the tables the
parent created and seeded (documents ``seed-0`` ... ``seed-3``), prints ``READY`` on stdout
when it reaches the moment to be killed at, and then waits to be killed. Whatever it
would do next (commit, remove files) it never does.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.orm import ledgers
from tests.crash.app import App, build


def ready_and_wait() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    time.sleep(600)  # the parent kills us long before
    raise SystemExit("not killed")


def block_removals_after_commit(remove_first: int = 0) -> None:
    """Make the lifecycle stop after the commit, before (or in the middle of) the removals."""
    real: Callable[[Iterable[str]], list[Any]] = getattr(ledgers, "remove_paths")  # noqa: B009

    def stalled(paths: Iterable[str]) -> list[Any]:
        paths = list(paths)
        real(paths[:remove_first])
        ready_and_wait()
        return []

    setattr(ledgers, "remove_paths", stalled)  # noqa: B010 - patched in this child only


class StallingStream(io.RawIOBase):
    """A large stream that stalls for good after ``stall_after`` bytes."""

    def __init__(self, size: int, stall_after: int) -> None:
        self.remaining, self.stall_after, self.sent = size, stall_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.sent >= self.stall_after:
            ready_and_wait()
        n = min(len(buffer), self.remaining, 64 * 1024)
        buffer[:n] = bytes([self.sent % 251]) * n
        self.remaining -= n
        self.sent += n
        return n


def seed(session: Session, app: App, n: int) -> Any:
    return session.scalars(sa.select(app.Document).where(app.Document.name == f"seed-{n}")).one()


def run(scenario: str, engine: sa.Engine, app: App) -> None:
    with Session(engine) as session:
        if scenario == "upload_before_commit":
            doc = app.Document(name="new", content=b"new content " * 1000)
            doc.attachments.append(app.Attachment(file=b"new attachment"))
            session.add(doc)
            session.flush()
            ready_and_wait()
        elif scenario == "replace_before_commit":
            seed(session, app, 0).content = b"replacement"
            session.flush()
            ready_and_wait()
        elif scenario == "delete_before_commit":
            session.delete(seed(session, app, 0))
            session.flush()
            ready_and_wait()
        elif scenario in {"replace_after_commit", "delete_after_commit", "bulk_delete"}:
            block_removals_after_commit()
            if scenario == "replace_after_commit":
                seed(session, app, 0).content = b"replacement"
            elif scenario == "delete_after_commit":
                session.delete(seed(session, app, 1))  # cascades to its attachment
            else:
                session.execute(sa.delete(app.Attachment))
                session.execute(sa.delete(app.Document).where(app.Document.name == "seed-2"))
            session.commit()
        elif scenario == "midway_through_removals":
            block_removals_after_commit(remove_first=3)
            for n in range(3):
                seed(session, app, n).content = f"replacement {n}".encode()
            session.commit()
        elif scenario == "mid_upload":
            doc = seed(session, app, 3)
            doc.content = StallingStream(64 * 1024 * 1024, stall_after=8 * 1024 * 1024)
        elif scenario == "savepoint_released_before_commit":
            with session.begin_nested():
                seed(session, app, 0).content = b"in a savepoint"
                session.add(app.Document(name="nested", content=b"nested"))
            session.flush()
            ready_and_wait()
        elif scenario == "list_append_before_commit":
            seed(session, app, 0).gallery.extend([b"first item", b"second item"])
            session.flush()
            ready_and_wait()
        elif scenario == "list_remove_after_commit":
            doc = seed(session, app, 0)
            doc.gallery.extend([b"first item", b"second item"])
            session.commit()
            block_removals_after_commit()
            del doc.gallery[0]
            session.commit()
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
    raise SystemExit(f"scenario {scenario!r} finished without being killed")


def main() -> None:
    scenario, db_url, storage_dir, prefix = sys.argv[1:5]
    app = build(prefix, storage_dir)
    engine = sa.create_engine(db_url)
    run(scenario, engine, app)


if __name__ == "__main__":
    main()
