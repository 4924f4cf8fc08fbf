"""A process that moves a column's files and is killed (SIGKILL) at a chosen moment.

``python -m tests.alembic.move_child <url> <table> <storage root> <moment> <batch size>``,
``moment`` being ``before-commit`` (the copies of the second batch are written, its rows not
yet updated) or ``after-commit`` (the second batch's rows are committed, its old files not yet
removed).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import sa_depot.migrate
from sa_depot.manager import DepotManager


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(url: str, table: str, root: str, moment: str, batch_size: int) -> None:
    for name in ("old", "new"):
        DepotManager.configure(
            name,
            {"depot.storage_path": str(Path(root) / name), "depot.fsync": "false"},
        )
    batches = 0

    def count_batch(progress: sa_depot.migrate.MoveProgress) -> None:
        nonlocal batches
        batches = progress.batches

    if moment == "before-commit":
        update = sa_depot.migrate._Database.update

        def update_then_die(self: Any, connection: sa.Connection, *args: Any) -> bool:
            if batches == 1:  # second batch: copies written, nothing committed
                die()
            return update(self, connection, *args)

        setattr(sa_depot.migrate._Database, "update", update_then_die)  # noqa: B010
    elif moment == "after-commit":
        remove = getattr(sa_depot.migrate, "remove_paths")  # noqa: B009

        def die_before_removing(paths: Any) -> Any:
            if batches == 1:  # second batch: rows committed, old files still there
                die()
            return remove(paths)

        setattr(sa_depot.migrate, "remove_paths", die_before_removing)  # noqa: B010
    else:
        raise SystemExit(f"unknown moment {moment!r}")
    engine = sa.create_engine(url)
    sa_depot.migrate.move_files(
        engine,
        table,
        "file",
        source="old",
        target="new",
        batch_size=batch_size,
        progress=count_batch,
    )
    raise SystemExit("the move finished: the kill never happened")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
