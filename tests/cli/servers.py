"""Run ``sa-depot demo`` or ``sa-depot serve`` as a real process and find the URL it prints."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_URL = re.compile(r"http://127\.0\.0\.1:\d+")


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    base_url: str
    banner: list[str]


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
    try:
        banner = _read_until_url(process, timeout)
        match = _URL.search("\n".join(banner))
        assert match is not None
        yield RunningServer(process, match.group(0), banner)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_until_url(process: subprocess.Popen[str], timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = process.stdout.readline()
            if not line:  # the process ended before printing a URL
                break
            lines.append(line.rstrip("\n"))
            if _URL.search(line):
                return lines
    output = "\n".join(lines)
    raise AssertionError(
        f"the server printed no URL (exit code {process.poll()}); its output:\n{output}"
    )
