"""Child process of the instructions section, run under valgrind's callgrind.

    python -m benchmarks.instructions_worker <contender> <operation> <count>

Operations: ``create`` (``count`` files of 1 KiB), ``read`` (get+read ``count`` of 200 files
created beforehand), ``large`` (``count`` creates of a 16 MiB file, or raw copies of it),
``serve`` (``count`` GET requests of a 1 KiB file through the contender's WSGI middleware,
called in-process as a server would: contenders ``sa_depot``, ``filedepot``),
``orm-insert``, ``orm-replace``, ``orm-delete`` (``count`` rows in transactions of 10, the ORM
section's workload of :mod:`benchmarks.orm_worker` on SQLite, after the same set-up and warm-up
whatever the count: contenders ``sa_depot``, ``filedepot``). The parent runs each with
``count`` 0 and N and divides the difference by N, so that start-up and set-up fall out.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
from pathlib import Path

from benchmarks.bench_storage import CHUNK, make_contender
from benchmarks.common import WORK, MiB, fresh_dir

READ_FILES = 200
#: Rows inserted before an ORM operation is counted (replace and delete work on them).
ORM_SETUP_ROWS = 80
LARGE_SIZE = 16 * MiB


def large(contender: str, count: int) -> None:
    source = WORK / "instructions-large.bin"
    if not source.exists() or source.stat().st_size != LARGE_SIZE:
        source.write_bytes(os.urandom(LARGE_SIZE))
    directory = fresh_dir("instructions", contender)
    if contender == "sa_depot no-fsync":
        from sa_depot.io.local import LocalFileStorage

        storage = LocalFileStorage(directory, fsync=False)
        for _ in range(count):
            with open(source, "rb") as fileobj:
                storage.create(fileobj, "large.bin", "application/octet-stream")
        return
    if contender in ("raw no-fsync", "raw no-fsync + SHA-256"):
        hashing = contender.endswith("SHA-256")
        for index in range(count):
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(Path(directory, str(index)), "wb") as dst:
                while chunk := src.read(CHUNK):
                    if hashing:
                        digest.update(chunk)
                    dst.write(chunk)
        return
    raise ValueError(contender)


def serve(contender: str, count: int) -> None:
    """``count`` GETs of one 1 KiB file through the middleware of :mod:`benchmarks.serve_apps`
    (its body read to the end and closed, as a WSGI server does)."""
    from benchmarks import serve_apps

    directory = fresh_dir("instructions", f"serve {contender}")
    os.environ["BENCH_SA_PATH" if contender == "sa_depot" else "BENCH_FD_PATH"] = str(directory)
    if contender == "sa_depot":
        from sa_depot.manager import DepotManager

        app = serve_apps.make_sa_depot_app()
        file_id = DepotManager.get("files").create(os.urandom(1024), "file.bin", "text/plain")
    elif contender == "filedepot":
        from depot.manager import DepotManager as FiledepotManager

        app = serve_apps.make_filedepot_app()
        file_id = FiledepotManager.get("files").create(os.urandom(1024), "file.bin", "text/plain")
    else:
        raise ValueError(contender)
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": f"/depot/files/{file_id}",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
    }

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{contender} answered {status}")

    for _ in range(count + 1):  # one request more: the first one's imports are set-up
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def orm(contender: str, operation: str, count: int) -> None:
    """``count`` rows inserted, replaced or deleted as the ORM section does, on SQLite.

    Set-up, the same for every count: the table, ``ORM_SETUP_ROWS`` rows inserted, then one
    transaction of each kind (replace, delete) so that every statement is compiled and cached
    before the rows that count.
    """
    import sqlalchemy as sa

    from benchmarks import orm_worker

    directory = fresh_dir("instructions", f"orm {contender} {operation}")
    library = orm_worker.make_library(contender, str(directory / "files"))
    model = orm_worker.make_model("rows", library)
    engine = sa.create_engine(f"sqlite:///{directory / 'rows.sqlite'}")
    orm_worker.Base.metadata.create_all(engine)
    library.create_extra_tables(engine)
    worker = orm_worker.Worker(library, model, engine)
    batch = orm_worker.BATCH
    for first in range(0, ORM_SETUP_ROWS, batch):
        worker.insert(str(first))
    worker.replace("0")
    worker.delete(str(ORM_SETUP_ROWS - batch))
    # The cyclic garbage collector's passes land wherever its allocation counters say, in the
    # run of 0 rows or in the run of N, and moved the count by about 10% between runs: it is
    # paused for the counted rows (after a full pass), for every contender alike.
    gc.collect()
    gc.disable()
    if operation == "orm-insert":
        for first in range(ORM_SETUP_ROWS, ORM_SETUP_ROWS + count, batch):
            worker.insert(str(first))
    elif operation == "orm-replace":
        for first in range(batch, batch + count, batch):
            worker.replace(str(first))
    elif operation == "orm-delete":
        for first in range(batch, batch + count, batch):
            worker.delete(str(first))
    else:
        raise ValueError(operation)
    gc.enable()
    engine.dispose()


def main() -> None:
    contender, operation, count_text = sys.argv[1:4]
    count = int(count_text)
    if operation.startswith("orm-"):
        orm(contender, operation, count)
        return
    if operation == "large":
        large(contender, count)
        return
    if operation == "serve":
        serve(contender, count)
        return
    store = make_contender(contender)
    payload = os.urandom(1024)
    if operation == "create":
        for _ in range(count):
            store.create(payload)
    elif operation == "read":
        ids = [store.create(payload) for _ in range(READ_FILES)]
        for index in range(count):
            store.read(ids[index % READ_FILES])
    else:
        raise ValueError(operation)


if __name__ == "__main__":
    main()
