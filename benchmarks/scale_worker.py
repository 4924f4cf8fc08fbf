"""Child process of the scale benchmark: latency as tables grow, and the collector's cost.

    python -m benchmarks.scale_worker latency <storage directory> <ops> <size>=<url> ...
    python -m benchmarks.scale_worker collect <storage directory> <database url>

``latency`` fills a table of documents (one file each) to ``size`` rows in each database
``url`` (one database per size, each with its own file registry) and then times ``ops``
deletes+commits and ``ops`` replaces+commits of random rows in each, in lockstep (one
operation on each size in turn), so that a burst of load on the shared machine hits every
size alike. ``collect`` runs :func:`sa_depot.collector.collect` over the table in one database
and reports its time and this process's peak RSS. Each prints one JSON line.

The rows are written in bulk, not through the ORM: ``COPY`` on PostgreSQL, ``executemany`` on
SQLite, with the registry rows (``sa_depot_files``, ``sa_depot_attachments``) the lifecycle
would have written for them, key for key (:class:`sa_depot.database.registry.RowRef`). Row ``i``
of the table of ``size`` rows uses the file ``file_id(i, kind(size, largest))``, which the
parent created in the storage beforehand (:func:`write_files`): each size has files of its
own. The descriptor is the one the ORM wrote for a real upload, with the id
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


def kind(size: int, largest: int) -> str:
    """The kind of files (see :func:`file_id`) of the table of ``size`` rows, when the
    largest has ``largest``."""
    return "row" if size == largest else f"rows{size}"


def file_id(number: int, kind: str = "row") -> str:
    """The (deterministic, uniformly spread) id of filler file ``number``."""
    digest = hashlib.md5(f"{kind}:{number}".encode()).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def write_files(root: str, numbers: range, kind: str = "row", modified: str = "") -> int:
    """Create the files ``file_id(n, kind)`` for ``n`` in ``numbers`` that do not exist yet, in
    a LocalFileStorage's layout (metadata and blob), with ``os.open``/``os.write``: far faster
    than the storage's own durable, atomic writes, and the same files for a reader. Returns
    the number created."""
    modified = modified or datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    checksum = hashlib.sha256(CONTENT).hexdigest()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    made: set[str] = set()
    created = 0
    for number in numbers:
        ident = file_id(number, kind)
        directory = os.path.join(root, ident[:2], ident[2:4])
        if directory not in made:
            os.makedirs(directory, exist_ok=True)
            made.add(directory)
        metadata = os.path.join(directory, ident + ".json")
        if os.path.exists(metadata):
            continue
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
        fd = os.open(metadata, flags, 0o644)
        os.write(fd, json.dumps(record).encode())
        os.close(fd)
        created += 1
    return created


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


def rows(first: int, last: int, descriptor: str, files: str) -> Iterator[dict[str, Any]]:
    """The user row and registry rows of rows ``first`` to ``last`` (included), using the
    files of kind ``files``."""
    from sa_depot.database.registry import RowRef, row_key

    for number in range(first, last + 1):
        ident = file_id(number, files)
        path = f"{STORAGE}/{ident}"
        key = row_key([number])
        yield {
            "id": number,
            "content": descriptor.format(id=ident),
            "path": path,
            "key": RowRef(TABLE, "content", key).attachment_key(path),
            "row_key": key,
        }


def fill(engine: sa.Engine, size: int, descriptor: str, kind_of_files: str) -> None:
    """Add rows 1 to ``size`` and their registry rows, in bulk; then bring the database to
    the steady state a table of that size lives in (statistics gathered, the bulk load's
    dirty pages written), so that the aftermath of loading is not measured as a cost of
    size."""
    now = datetime.now(timezone.utc)
    for start in range(1, size + 1, CHUNK):
        chunk = list(rows(start, min(start + CHUNK - 1, size), descriptor, kind_of_files))
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
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")
        else:
            conn.exec_driver_sql("ANALYZE")


def _copy(cursor: Any, table: str, columns: tuple[str, ...], data: list[tuple[Any, ...]]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def _sqlite_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


# == timing ====================================================================================
def latency(directory: str, ops: int, databases: dict[int, str]) -> dict[str, Any]:
    from sa_depot.io.utils import FileIntent
    from sa_depot.schema import metadata

    configure(directory)
    Document = model()
    engines: dict[int, sa.Engine] = {}
    fill_seconds: dict[int, float] = {}
    for size, url in databases.items():
        engine = engines[size] = sa.create_engine(url)
        Base.metadata.drop_all(engine)
        metadata.drop_all(engine)
        metadata.create_all(engine)
        Base.metadata.create_all(engine)
        started = time.perf_counter()
        fill(engine, size, template(engine, Document), kind(size, max(databases)))
        fill_seconds[size] = time.perf_counter() - started
        print(f"   {url}: {size:,} rows in {fill_seconds[size]:.0f} s", file=sys.stderr)
    # PostgreSQL and SQLite share the files: each changes rows of its own parity only, so
    # that neither removes a file the other's rows use
    dialect = next(iter(engines.values())).dialect.name
    parity = 1 if dialect == "postgresql" else 0
    chooser = random.Random(11)
    used: set[tuple[int, int]] = set()

    def pick(size: int) -> int:
        while True:
            number = chooser.randrange(1, size + 1)
            if number % 2 == parity and (size, number) not in used:
                used.add((size, number))
                return number

    def delete(engine: sa.Engine, number: int) -> float:
        start = time.perf_counter()
        with Session(engine) as session:
            session.delete(session.get(Document, number))
            session.commit()
        return time.perf_counter() - start

    def replace(engine: sa.Engine, number: int) -> float:
        start = time.perf_counter()
        with Session(engine) as session:
            document = session.get(Document, number)
            document.content = FileIntent(b"y", "new.bin", "application/octet-stream")
            session.commit()
        return time.perf_counter() - start

    deletes: dict[int, list[float]] = {size: [] for size in engines}
    replaces: dict[int, list[float]] = {size: [] for size in engines}
    for round_number in range(WARMUP + ops):
        for size, engine in engines.items():  # lockstep: each size in turn
            spent_delete = delete(engine, pick(size))
            spent_replace = replace(engine, pick(size))
            if round_number >= WARMUP:
                deletes[size].append(spent_delete)
                replaces[size].append(spent_replace)
    result: dict[str, Any] = {}
    for size, engine in engines.items():
        result[str(size)] = {
            "delete ms": statistics.median(deletes[size]) * 1000,
            "replace ms": statistics.median(replaces[size]) * 1000,
            "delete p90 ms": statistics.quantiles(deletes[size], n=10)[-1] * 1000,
            "replace p90 ms": statistics.quantiles(replaces[size], n=10)[-1] * 1000,
            "fill s": fill_seconds[size],
        }
        print(f"   {dialect} {size:,} rows: {result[str(size)]}", file=sys.stderr)
        engine.dispose()
    return result


def collect(directory: str, url: str) -> dict[str, Any]:
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
    command, directory, *rest = sys.argv[1:]
    if command == "latency":
        databases = {int(size): url for size, url in (arg.split("=", 1) for arg in rest[1:])}
        emit(latency(directory, int(rest[0]), databases))
    elif command == "collect":
        emit(collect(directory, rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}: latency or collect")


if __name__ == "__main__":
    main()
