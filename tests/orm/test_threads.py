"""Several sessions in several threads at once: each transaction's files follow it.

(On SQLite the ``engine`` fixture takes the write lock at BEGIN, so writers queue.)
"""

from __future__ import annotations

import random
import threading

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.orm.conftest import Depot, Models

THREADS = 4
ROUNDS = 12


def worker(engine: sa.Engine, models: Models, number: int, errors: list[BaseException]) -> None:
    rng = random.Random(number)
    try:
        with Session(engine) as session:
            docs = []
            for round_ in range(ROUNDS):
                name = f"t{number}-{round_}"
                action = rng.choice(["create", "replace", "delete", "rollback", "savepoint"])
                if action == "create" or not docs:
                    doc = models.Document(name=name, content=name.encode())
                    session.add(doc)
                    session.commit()
                    docs.append(doc)
                elif action == "replace":
                    rng.choice(docs).content = f"{name} replaced".encode()
                    session.commit()
                elif action == "delete":
                    doc = docs.pop(rng.randrange(len(docs)))
                    session.delete(doc)
                    session.commit()
                elif action == "rollback":
                    rng.choice(docs).content = b"rolled back"
                    session.add(models.Document(name=name, content=b"rolled back too"))
                    session.flush()
                    session.rollback()
                else:
                    doc = rng.choice(docs)
                    with session.begin_nested():
                        doc.content = f"{name} in a savepoint".encode()
                    savepoint = session.begin_nested()
                    doc.content = b"rolled back savepoint"
                    session.flush()
                    savepoint.rollback()
                    session.commit()
    except BaseException as exc:  # noqa: BLE001 - reported to the main thread
        errors.append(exc)


def test_sessions_in_several_threads(engine: sa.Engine, models: Models, depot: Depot) -> None:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=worker, args=(engine, models, n, errors)) for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    with Session(engine) as session:
        values = list(session.scalars(sa.select(models.Document.content)))
        referenced = {p for v in values if v is not None for p in v.files}
        for value in values:
            assert value is not None
            with value.file as stored:
                assert stored.read().startswith(b"t")
    assert depot.stored() == referenced
