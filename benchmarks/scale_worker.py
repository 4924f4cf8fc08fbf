"""Child process of the scale benchmark: latency as tables grow, and the collector's cost.

    python -m benchmarks.scale_worker latency <database url> <storage directory> <sizes> <ops>
    python -m benchmarks.scale_worker collect <database url> <storage directory>

``latency`` fills a table of documents (one file each) to each of ``sizes`` rows in turn
(a comma-separated list, increasing) and times ``ops`` deletes+commits and ``ops``
replaces+commits of random rows at each size. ``collect`` runs :func:`sa_depot.collector.collect`
over the table ``latency`` left and reports its time and this process's peak RSS. Each prints
one JSON line.

The rows are written in bulk, not through the ORM: ``COPY`` on PostgreSQL, ``executemany`` on
SQLite, with the registry rows (``sa_depot_files``, ``sa_depot_attachments``) the lifecycle
would have written for them, key for key (:class:`sa_depot.database.registry.RowRef`). Row ``i``
uses the file :func:`file_id` ``(i)``, which the parent created in the storage beforehand
(:func:`write_files`). The descriptor is the one the ORM wrote for a real upload, with the id
changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from benchmarks.common import emit, peak_rss_kib
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile

TABLE = "scale_documents"
STORAGE = "scale"
#: Rows written per bulk statement while filling.
CHUNK = 20_000
#: Operations run before the timed ones at each size (caches, compiled statements).
WARMUP = 5
#: The one byte each filler file holds, and its checksum.
CONTENT = b"x"


def file_id(number: int, kind: str = "row") -> str:
    """The (deterministic, uniformly spread) id of filler file ``number``."""
    digest = hashlib.md5(f"{kind}:{number}".encode()).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def write_files(root: str, numbers: range, kind: str = "row", modified: str = "") -> None:
    """Create the files ``file_id(n)`` for ``n`` in ``numbers`` in a LocalFileStorage's layout
    (metadata and blob), with ``os.open``/``os.write``: far faster than the storage's own
    durable, atomic writes, and the same files for a reader."""
    modified = modified or datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    checksum = hashlib.sha256(CONTENT).hexdigest()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    made: set[str] = set()
    for number in numbers:
        ident = file_id(number, kind)
        directory = os.path.join(root, ident[:2], ident[2:4])
        if directory not in made:
            os.makedirs(directory, exist_ok=True)
            made.add(directory)
        blob = f"{ident}.0000000000000000"
        record = {
            "blob": blob,
            "filename": "file.bin",
            "content_type": "application/octet-stream",
            "content_length": len(CONTENT),
            "last_modified": modified,
            "checksum": checksum,
        }
        fd = os.open(os.path.join(directory, blob), flags, 0o644)
        os.write(fd, CONTENT)
        os.close(fd)
        fd = os.open(os.path.join(directory, ident + ".json"), flags, 0o644)
        os.write(fd, json.dumps(record).encode())
        os.close(fd)


class Base(DeclarativeBase):
    pass


def model() -> Any:
    class Document(Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    return Document


def configure(directory: str) -> None:
    from sa_depot.manager import DepotManager

    # filedepot's durability (no fsync), as in the ORM section: the disk's fsync latency
    # would otherwise drown what this section measures
    DepotManager.configure(STORAGE, {"depot.storage_path": directory, "depot.fsync": "false"})


# == filling ===================================================================================
def template(engine: sa.Engine, Document: Any) -> str:
    """The descriptor the ORM writes for a real upload (as stored text), with the file's id
    replaced by ``{id}``. The row is deleted again."""
    from sa_depot.io.utils import FileIntent

    with Session(engine) as session:
        document = Document(content=FileIntent(CONTENT, "file.bin", "application/octet-stream"))
        session.add(document)
        session.commit()
        ident = document.content["file_id"]
        stored = session.execute(
            sa.select(sa.type_coerce(Document.__table__.c.content, sa.Text()))
        ).scalar_one()
        session.delete(document)
        session.commit()
    text = stored if isinstance(stored, str) else json.dumps(stored)  # psycopg decodes jsonb
    return text.replace("{", "{{").replace("}", "}}").replace(ident, "{id}")


def rows(first: int, last: int, descriptor: str) -> Iterator[dict[str, Any]]:
    """The user row and registry rows of rows ``first`` to ``last`` (included)."""
    from sa_depot.database.registry import RowRef, row_key

    for number in range(first, last + 1):
        ident = file_id(number)
        path = f"{STORAGE}/{ident}"
        key = row_key([number])
        yield {
            "id": number,
            "content": descriptor.format(id=ident),
            "path": path,
            "key": RowRef(TABLE, "content", key).attachment_key(path),
            "row_key": key,
        }


def fill(engine: sa.Engine, first: int, last: int, descriptor: str) -> None:
    """Add rows ``first`` to ``last`` and their registry rows, in bulk."""
    now = datetime.now(timezone.utc)
    for start in range(first, last + 1, CHUNK):
        chunk = list(rows(start, min(start + CHUNK - 1, last), descriptor))
        files = [(r["path"], STORAGE, 1, now) for r in chunk]
        attachments = [(r["key"], r["path"], TABLE, "content", r["row_key"], 1, now) for r in chunk]
        documents = [(r["id"], r["content"]) for r in chunk]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            if engine.dialect.name == "postgresql":
                _copy(cursor, TABLE, ("id", "content"), documents)
                _copy(cursor, "sa_depot_files", ("path", "storage", "refs", "registered_at"), files)
                columns = ("key", "path", "table_name", "column_name", "row_key", "uses")
                _copy(cursor, "sa_depot_attachments", (*columns, "attached_at"), attachments)
            else:
                cursor.executemany(f"INSERT INTO {TABLE} (id, content) VALUES (?, ?)", documents)
                cursor.executemany(
                    "INSERT INTO sa_depot_files (path, storage, refs, registered_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(p, s, r, _sqlite_time(t)) for p, s, r, t in files],
                )
                cursor.executemany(
                    'INSERT INTO sa_depot_attachments ("key", path, table_name, column_name, '
                    "row_key, uses, attached_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*a[:-1], _sqlite_time(a[-1])) for a in attachments],
                )
            raw.commit()
        finally:
            raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")  # the statistics a table of this size would have


def _copy(cursor: Any, table: str, columns: tuple[str, ...], data: list[tuple[Any, ...]]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def _sqlite_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


# == timing ====================================================================================
def latency(url: str, directory: str, sizes: list[int], ops: int) -> dict[str, Any]:
    from sa_depot.io.utils import FileIntent
    from sa_depot.schema import metadata

    configure(directory)
    Document = model()
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    Base.metadata.create_all(engine)
    descriptor = template(engine, Document)
    # PostgreSQL and SQLite share the files: each changes rows of its own parity only, so
    # that neither removes a file the other's rows use
    parity = 1 if engine.dialect.name == "postgresql" else 0
    chooser = random.Random(11)
    used: set[int] = set()
    result: dict[str, Any] = {}
    filled = 0

    def pick(size: int) -> int:
        while True:
            number = chooser.randrange(1, size + 1)
            if number % 2 == parity and number not in used:
                used.add(number)
                return number

    def delete(number: int) -> float:
        start = time.perf_counter()
        with Session(engine) as session:
            session.delete(session.get(Document, number))
            session.commit()
        return time.perf_counter() - start

    def replace(number: int) -> float:
        start = time.perf_counter()
        with Session(engine) as session:
            document = session.get(Document, number)
            document.content = FileIntent(b"y", "new.bin", "application/octet-stream")
            session.commit()
        return time.perf_counter() - start

    for size in sizes:
        started = time.perf_counter()
        fill(engine, filled + 1, size, descriptor)
        filled = size
        fill_seconds = time.perf_counter() - started
        for _ in range(WARMUP):
            delete(pick(size))
            replace(pick(size))
        deletes: list[float] = []
        replaces: list[float] = []
        for _ in range(ops):  # interleaved, so that a burst of load hits both alike
            deletes.append(delete(pick(size)))
            replaces.append(replace(pick(size)))
        result[str(size)] = {
            "delete ms": statistics.median(deletes) * 1000,
            "replace ms": statistics.median(replaces) * 1000,
            "delete p90 ms": statistics.quantiles(deletes, n=10)[-1] * 1000,
            "replace p90 ms": statistics.quantiles(replaces, n=10)[-1] * 1000,
            "fill s": fill_seconds,
        }
        print(f"   {engine.dialect.name} {size:,} rows: {result[str(size)]}", file=sys.stderr)
    engine.dispose()
    return result


def collect(url: str, directory: str) -> dict[str, Any]:
    from sa_depot.collector import collect as run_collector

    configure(directory)
    model()
    engine = sa.create_engine(url)
    start = time.perf_counter()
    report = run_collector(engine, Base.metadata)
    seconds = time.perf_counter() - start
    engine.dispose()
    return {
        "seconds": seconds,
        "peak RSS MiB": peak_rss_kib() / 1024,
        "rows": report.rows_scanned,
        "referenced": report.referenced,
        "stored": report.stored,
        "orphans": len(report.orphans),
        "missing": len(report.missing),
        "errors": len(report.errors),
    }


def main() -> None:
    command, url, directory, *rest = sys.argv[1:]
    if command == "latency":
        sizes = [int(s) for s in rest[0].split(",")]
        emit(latency(url, directory, sizes, int(rest[1])))
    elif command == "collect":
        emit(collect(url, directory))
    else:
        raise SystemExit(f"unknown command {command!r}: latency or collect")


if __name__ == "__main__":
    main()
