"""Web servers (uvicorn, waitress) run as processes of their own, for tests that measure them
(peak RSS) or run an application as its users would (the examples).

``server_process(argv, ...)`` starts ``python -m <argv>`` with a free port in ``{port}``,
waits until the server answers HTTP, yields it, and stops it by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def status(self) -> dict[str, int]:
        """The ``/proc/<pid>/status`` memory figures of the server, in KiB (VmRSS, VmHWM)."""
        figures: dict[str, int] = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    figures[key] = int(value.split()[0])
        return figures

    def reset_peak(self) -> None:
        """Reset the server's VmHWM to its current RSS (Linux: ``clear_refs`` value 5), so
        that the next peak is the next request's own."""
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def server_process(
    argv: list[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/",
    timeout: float = 60,
) -> Iterator[ServerProcess]:
    """Run ``python -m <argv>``, ``{port}`` in ``argv`` replaced by a free port."""
    port = free_port()
    command = [sys.executable, "-m", *(arg.replace("{port}", str(port)) for arg in argv)]
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{' '.join(argv)} exited:\n{server.output()}")
            try:
                requests.get(server.url(ready_path), timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{' '.join(argv)} did not answer in {timeout} s:\n{server.output()}"
                    ) from None
                time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
