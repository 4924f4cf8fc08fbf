"""Child process of the instructions section, run under valgrind's callgrind.

    python -m benchmarks.instructions_worker <contender> <operation> <count>

Operations: ``create`` (``count`` files of 1 KiB), ``read`` (get+read ``count`` of 200 files
created beforehand), ``large`` (``count`` creates of a 16 MiB file, or raw copies of it),
``serve`` (``count`` GET requests of a 1 KiB file through the contender's WSGI middleware,
called in-process as a server would: contenders ``sa_depot``, ``filedepot``). The
parent runs each with ``count`` 0 and N and divides the difference by N, so that start-up and
set-up fall out.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from benchmarks.bench_storage import CHUNK, make_contender
from benchmarks.common import WORK, MiB, fresh_dir

READ_FILES = 200
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


def main() -> None:
    contender, operation, count_text = sys.argv[1:4]
    count = int(count_text)
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
