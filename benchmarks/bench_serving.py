"""Serving benchmark: wrk against gunicorn (sa_depot's and filedepot's middleware) and nginx.

Servers (all on 127.0.0.1, started and stopped here):

* gunicorn running sa_depot's DepotMiddleware, and another running filedepot's, with the same
  worker settings;
* nginx serving the static files directly, and proxying ``/depot/`` to the sa_depot gunicorn,
  whose ``accel`` storage answers with ``X-Accel-Redirect`` so that nginx sends the file.

Each wrk run lasts ``DURATION`` seconds after a short warm-up; every case runs once per
repetition, in an order that rotates between repetitions.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import WORK, KiB, MiB, Samples, SectionResult, Target, fresh_dir

DURATION = 4
WARMUP = 1
CONNECTIONS = 8
WRK_THREADS = 2
GUNICORN_WORKERS = 2
SIZES = {"1 KiB": 1 * KiB, "10 MiB": 10 * MiB}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port} after {timeout} s")


@contextlib.contextmanager
def server(args: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[None]:
    with open(log, "wb") as logfile:
        process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, process)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # our own process group only
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def gunicorn(
    app: str, port: int, env: dict[str, str], log: Path
) -> contextlib.AbstractContextManager[None]:
    args = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers", str(GUNICORN_WORKERS),
        "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
        f"benchmarks.serve_apps:{app}",
    ]  # fmt: skip
    return server(args, port, {**env, "PYTHONPATH": str(WORK.parent.parent)}, log)


NGINX_CONF = """\
daemon off;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {static}/; }}
        location /depot/ {{ proxy_pass http://127.0.0.1:{upstream}; }}
        location /_depot_files/ {{ internal; alias {storage}/; }}
    }}
}}
"""


def nginx(
    port: int, upstream: int, static: Path, storage: Path
) -> contextlib.AbstractContextManager[None]:
    prefix = fresh_dir("serve", "nginx")
    conf = prefix / "nginx.conf"
    text = NGINX_CONF.format(
        prefix=prefix, port=port, upstream=upstream, static=static, storage=storage
    )
    if os.geteuid() == 0:  # workers would run as nobody, who may not read benchmarks/work
        text = "user root;\n" + text
    conf.write_text(text)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return server([binary, "-p", str(prefix), "-c", str(conf)], port, {}, prefix / "stdout.log")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url: str, duration: float) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) of ``url``."""
    out = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, timeout=duration + 30, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out and "read 0" not in out:
        raise RuntimeError(f"wrk {url} saw errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s|m)", out).groups()  # type: ignore[union-attr]
    return rate, float(value) * _UNITS[unit]


def fetch_headers(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
        return str(response.headers)


def run(repetitions: int) -> list[SectionResult]:
    if not shutil.which("wrk") or not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        return [SectionResult("serving", Samples(), skipped="wrk or nginx is not installed")]
    from depot.io.local import LocalFileStorage as DepotLocal

    from sa_depot.io.local import LocalFileStorage

    root = fresh_dir("serve")
    sa_path, fd_path, static = root / "sa_depot", root / "filedepot", root / "static"
    static.mkdir()
    sa_storage, fd_storage = LocalFileStorage(sa_path), DepotLocal(str(fd_path))
    sa_ids, fd_ids = {}, {}
    for label, size in SIZES.items():
        data = os.urandom(size)
        sa_ids[label] = sa_storage.create(data, "file.bin", "application/octet-stream")
        fd_ids[label] = fd_storage.create(data, "file.bin", "application/octet-stream")
        (static / f"{size}.bin").write_bytes(data)

    sa_port, fd_port, nginx_port = free_port(), free_port(), free_port()
    env = {"BENCH_SA_PATH": str(sa_path), "BENCH_FD_PATH": str(fd_path)}
    urls: dict[str, str] = {}
    for label, size in SIZES.items():
        urls[f"gunicorn sa_depot {label}"] = (
            f"http://127.0.0.1:{sa_port}/depot/files/{sa_ids[label]}"
        )
        urls[f"gunicorn filedepot {label}"] = (
            f"http://127.0.0.1:{fd_port}/depot/files/{fd_ids[label]}"
        )
        urls[f"nginx static {label}"] = f"http://127.0.0.1:{nginx_port}/static/{size}.bin"
        urls[f"nginx + sa_depot X-Accel {label}"] = (
            f"http://127.0.0.1:{nginx_port}/depot/accel/{sa_ids[label]}"
        )
    samples = Samples()
    cases = list(urls)
    with (
        gunicorn("sa_depot_app", sa_port, env, root / "gunicorn-sa.log"),
        gunicorn("filedepot_app", fd_port, env, root / "gunicorn-fd.log"),
        nginx(nginx_port, sa_port, static, sa_path),
    ):
        headers = fetch_headers(urls["nginx + sa_depot X-Accel 10 MiB"])
        if f"Content-Length: {10 * MiB}" not in headers:
            raise RuntimeError(f"X-Accel-Redirect did not hand the file to nginx:\n{headers}")
        for rep in range(repetitions):
            shift = rep % len(cases)
            for case in cases[shift:] + cases[:shift]:
                wrk(urls[case], WARMUP)
                rate, p99 = wrk(urls[case], DURATION)
                samples.add(case, "requests/s", rate)
                samples.add(case, "p99 ms", p99)
    section = "serving (wrk on loopback)"
    return [
        SectionResult(
            name=section,
            samples=samples,
            targets=[
                Target(
                    section,
                    "serving 1 KiB",
                    "gunicorn sa_depot 1 KiB",
                    "gunicorn filedepot 1 KiB",
                    "requests/s",
                    1.0,
                    "same gunicorn settings",
                ),
                Target(
                    section,
                    "serving 10 MiB",
                    "nginx + sa_depot X-Accel 10 MiB",
                    "nginx static 10 MiB",
                    "requests/s",
                    0.9,
                ),
                Target(
                    section,
                    "serving 10 MiB without nginx",
                    "gunicorn sa_depot 10 MiB",
                    "gunicorn filedepot 10 MiB",
                    "requests/s",
                    1.0,
                ),
                Target(
                    section,
                    "1 KiB via nginx",
                    "nginx + sa_depot X-Accel 1 KiB",
                    "nginx static 1 KiB",
                    "requests/s",
                    0.0,
                ),
            ],
            info=[
                (case, m, u)
                for case in cases
                for m, u in (("requests/s", "req/s"), ("p99 ms", "ms"))
            ],
            notes=[
                f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{DURATION}s --latency after a "
                f"{WARMUP} s warm-up; gunicorn --workers {GUNICORN_WORKERS} --worker-class "
                "sync (no keep-alive, so every request opens a connection) for both "
                "middlewares; nginx with sendfile, keep-alive, worker_processes auto. "
                "wrk, gunicorn and nginx share the machine's 2 cores.",
                "X-Accel: nginx proxies the request to the sa_depot gunicorn, whose storage "
                "policy answers with an empty response naming the file; nginx then sends it.",
            ],
        )
    ]
