"""One process of the soak test: random transactions against the crash application's tables.

``python -m tests.crash.soak_worker DB_URL STORAGE_DIR PREFIX SEED SECONDS LOG`` runs until
SECONDS have passed, logging every operation to LOG (seeded: the same seed replays the same
choices, though not the same interleaving with the other workers). Every file it stores is
named ``w<SEED>-...`` so that the parent can tell whose files leaked. It prints
``STATS <json>`` when done.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from tests.crash.app import App, build


class Deliberate(Exception):
    """Raised inside ``with Session()`` to leave the block by an exception."""


class Worker:
    def __init__(self, engine: sa.Engine, app: App, seed: int, log: TextIO) -> None:
        self.engine, self.app, self.log = engine, app, log
        self.rng = random.Random(seed)
        self.tag = f"w{seed}"
        self.files = 0
        self.stats: Counter[str] = Counter()

    # -- helpers ---------------------------------------------------------------------------
    def content(self) -> FileIntent:
        self.files += 1
        size = self.rng.choice([1, 100, 4096, 30_000, 70_000])
        data = self.rng.randbytes(size)
        return FileIntent(data, f"{self.tag}-{self.files}.bin", "application/octet-stream")

    def pick(self, session: Session, count: int = 1) -> list[Any]:
        ids = list(session.scalars(sa.select(self.app.Document.id)))
        return [
            session.get(self.app.Document, i) for i in self.rng.sample(ids, min(count, len(ids)))
        ]

    def new_document(self) -> Any:
        doc = self.app.Document(name=f"{self.tag}-{self.files}-{self.rng.random()}"[:60])
        doc.content = self.content()
        for _ in range(self.rng.randint(0, 2)):
            doc.attachments.append(self.app.Attachment(file=self.content()))
        return doc

    def change(self, session: Session) -> str:
        """One random change inside the current transaction."""
        (kind,) = self.rng.choices(
            ["create", "replace", "delete", "attach", "detach", "clear"], [4, 3, 1, 2, 1, 1]
        )
        if kind == "create":
            session.add(self.new_document())
            return kind
        docs = [d for d in self.pick(session) if d is not None]
        if not docs:
            session.add(self.new_document())
            return "create"
        doc = docs[0]
        if kind == "replace":
            doc.content = self.content()
        elif kind == "delete":
            session.delete(doc)
        elif kind == "attach":
            doc.attachments.append(self.app.Attachment(file=self.content()))
        elif kind == "detach" and doc.attachments:
            doc.attachments.pop(0)  # delete-orphan
        else:
            doc.content = None
        return kind

    # -- transactions ------------------------------------------------------------------------
    def commit(self) -> str:
        with Session(self.engine) as session:
            kinds = [self.change(session) for _ in range(self.rng.randint(1, 3))]
            session.commit()
        return "commit " + ",".join(kinds)

    def rollback(self) -> str:
        with Session(self.engine) as session:
            kinds = [self.change(session) for _ in range(self.rng.randint(1, 3))]
            if self.rng.random() < 0.5:
                session.flush()
            session.rollback()
        return "rollback " + ",".join(kinds)

    def savepoints(self) -> str:
        steps = []
        with Session(self.engine) as session:
            steps.append(self.change(session))
            for _ in range(self.rng.randint(1, 3)):
                nested = session.begin_nested()
                steps.append(self.change(session))
                if self.rng.random() < 0.5:
                    inner = session.begin_nested()
                    steps.append(self.change(session))
                    if self.rng.random() < 0.5:
                        inner.rollback()
                        steps.append("inner-rollback")
                    else:
                        inner.commit()
                if self.rng.random() < 0.5:
                    nested.rollback()
                    steps.append("savepoint-rollback")
                else:
                    nested.commit()
                    steps.append("release")
            if self.rng.random() < 0.8:
                session.commit()
                steps.append("commit")
            else:
                session.rollback()
                steps.append("rollback")
        return "savepoints " + ",".join(steps)

    def bulk_delete(self) -> str:
        Document, Attachment = self.app.Document, self.app.Attachment
        with Session(self.engine) as session:
            ids = [d.id for d in self.pick(session, self.rng.randint(1, 3)) if d is not None]
            session.execute(sa.delete(Attachment).where(Attachment.document_id.in_(ids)))
            session.execute(sa.delete(Document).where(Document.id.in_(ids)))
            session.commit()
        return f"bulk-delete {len(ids)}"

    def bulk_update(self) -> str:
        Document = self.app.Document
        with Session(self.engine) as session:
            docs = [d for d in self.pick(session) if d is not None]
            if not docs:
                return "bulk-update none"
            session.execute(
                sa.update(Document)
                .where(Document.id == docs[0].id)
                .values(content=UploadedFile(self.content()))
            )
            if self.rng.random() < 0.8:
                session.commit()
                return "bulk-update commit"
            session.rollback()
            return "bulk-update rollback"

    def exception_in_with(self) -> str:
        try:
            with Session(self.engine) as session:
                self.change(session)
                if self.rng.random() < 0.5:
                    session.flush()
                raise Deliberate()
        except Deliberate:
            return "exception-in-with"

    def run(self, seconds: float) -> None:
        operations: list[tuple[Callable[[], str], int]] = [
            (self.commit, 8),
            (self.rollback, 3),
            (self.savepoints, 4),
            (self.bulk_delete, 1),
            (self.bulk_update, 1),
            (self.exception_in_with, 2),
        ]
        functions = [f for f, _ in operations]
        weights = [w for _, w in operations]
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            (operation,) = self.rng.choices(functions, weights)
            first_file = self.files + 1
            try:
                outcome = operation()
                self.stats[operation.__name__] += 1
            except (sa.exc.SQLAlchemyError, StaleDataError) as exc:
                # Contention with the other workers (a row deleted under us, a deadlock, a
                # lock timeout) or a random walk SQLAlchemy refuses: the transaction rolled
                # back; so must its files have.
                outcome = f"{operation.__name__} failed: {type(exc).__name__}"
                self.stats["conflicts"] += 1
            self.log.write(f"{n} {outcome} files {first_file}-{self.files}\n")
            self.log.flush()
        self.stats["transactions"] = n


def main() -> None:
    db_url, storage_dir, prefix, seed, seconds, log_path = sys.argv[1:7]
    app = build(prefix, storage_dir)
    engine = sa.create_engine(
        db_url, connect_args={"options": "-c lock_timeout=5000 -c deadlock_timeout=200"}
    )
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"worker seed={seed} seconds={seconds}\n")
        worker = Worker(engine, app, int(seed), log)
        worker.run(float(seconds))
    sys.stdout.write("STATS " + json.dumps(dict(worker.stats)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
