"""A web process or promotion worker the promotion crash tests kill with SIGKILL.

``python -m tests.crash.promotion_child SCENARIO DB_URL STORAGE_DIR PREFIX`` prints ``READY``
at its crash point and waits to be killed:

* ``web_after_commit``: a row with a queued upload committed; killed as the lifecycle hands
  the promotion to its executor (which never runs it);
* ``worker_in_filters``: a worker promoting a committed row, killed while the filters run,
  after the promoted file and a derivative were stored in the public storage;
* ``worker_before_swap_commit``: killed after the compare-and-set flushed the promoted
  descriptor, before its transaction commits;
* ``worker_after_swap_commit``: killed after the swap committed, before the queued file is
  removed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot.database import promotions as journal
from sa_depot.fields.interfaces import DepotFileInfo, FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.orm import ledgers
from sa_depot.orm import promotions as dispatch
from sa_depot.promotion import promote

#: Where the derivative filter stops, in the child being killed ("" elsewhere).
crash_point: list[str] = [""]


def ready_and_wait() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    time.sleep(600)  # the parent kills us long before
    raise SystemExit("not killed")


class Lowered(FileFilter):
    """Stores a lower-cased derivative; stops for the kill when asked to."""

    def on_save(self, uploaded: DepotFileInfo) -> None:
        with uploaded.file as stored:
            data = stored.read()
        path, _ = uploaded.store_content(data.lower(), "lower.txt", "text/plain")
        uploaded["lower_path"] = path
        if crash_point[0] == "filters":
            ready_and_wait()


@dataclass
class PromotionApp:
    Base: type[DeclarativeBase]
    Photo: Any
    metadata: sa.MetaData


def build(prefix: str, storage_dir: str) -> PromotionApp:
    for name in ("queue", "public"):
        DepotManager.configure(
            name, {"depot.storage_path": f"{storage_dir}/{name}", "depot.fsync": "false"}
        )

    class Base(DeclarativeBase):
        pass

    class Photo(Base):
        __tablename__ = f"{prefix}_photos"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(50), unique=True)
        image: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(upload_storage="queue", promote_to="public", filters=[Lowered()])
        )

    return PromotionApp(Base, Photo, Base.metadata)


class Stalling:
    """An executor that stops the process for the kill as a commit hands it promotions."""

    def submit(self, engine: sa.Engine, paths: Sequence[str]) -> None:
        ready_and_wait()

    def shutdown(self, wait: bool = True) -> None:
        pass


class Ignoring:
    def submit(self, engine: sa.Engine, paths: Sequence[str]) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass


def add_photo(engine: sa.Engine, app: PromotionApp, name: str) -> None:
    with Session(engine) as session:
        session.add(app.Photo(name=name, image=UploadedFile.of(f"Photo {name}".encode() * 100)))
        session.commit()


def main(scenario: str, db_url: str, storage_dir: str, prefix: str) -> None:
    app = build(prefix, storage_dir)
    engine = sa.create_engine(db_url)
    if scenario == "web_after_commit":
        dispatch.set_executor(Stalling())
        add_photo(engine, app, "crashed")
        raise SystemExit("the commit should have stopped in the executor")
    dispatch.set_executor(Ignoring())
    [path] = journal.due(engine)  # the parent committed one queued photo
    if scenario == "worker_in_filters":
        crash_point[0] = "filters"
    elif scenario == "worker_before_swap_commit":

        @sa.event.listens_for(Session, "after_flush")
        def _stop(session: Session, context: Any) -> None:
            ready_and_wait()

    elif scenario == "worker_after_swap_commit":

        def stalled(paths: Iterable[str]) -> list[Any]:
            ready_and_wait()
            return []

        setattr(ledgers, "remove_paths", stalled)  # noqa: B010 - patched in this child only
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    promote(engine, path)
    raise SystemExit("the promotion should have stopped at the crash point")


if __name__ == "__main__":
    main(*sys.argv[1:5])
