"""Run ``sa-depot demo`` or ``sa-depot serve`` as a real process and find the URL it prints."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_URL = re.compile(r"http://127\.0\.0\.1:\d+")


class RunningServer:
    """The process, the base URL it printed, and its output (stdout and stderr), line by
    line as it comes (a thread reads it, so that no line waits in a buffer)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base_url = ""
        self.banner: list[str] = []

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout: float = 30) -> str | None:
        """The next line of output; ``None`` once the process has ended."""
        line = self._lines.get(timeout=timeout)
        if line is not None:
            self.output.append(line)
        return line

    def wait_for_line(self, pattern: str, timeout: float = 30) -> str:
        """The next line matching ``pattern`` (the lines before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.next_line(max(0.01, remaining))
            except queue.Empty:
                line = None
            if line is not None and re.search(pattern, line):
                return line
            if line is None or remaining <= 0:
                raise AssertionError(
                    f"no line matching {pattern!r} (exit code {self.process.poll()}); "
                    "the output:\n" + "\n".join(self.output)
                )


@contextmanager
def cli_server(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> Iterator[RunningServer]:
    """Start ``python -m sa_depot.cli <args>`` and yield once it printed its URL."""
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sa_depot.cli", *args],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = RunningServer(process)
    try:
        line = server.wait_for_line(_URL.pattern, timeout)
        match = _URL.search(line)
        assert match is not None
        server.base_url = match.group(0)
        server.banner = list(server.output)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server._reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
