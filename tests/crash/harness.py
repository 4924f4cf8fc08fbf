"""Running child processes and killing them with SIGKILL (kill -9) at the moment they report."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spawn(module: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m module args...`` from the repository root, stderr to ``log``."""
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )


def read_line(proc: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> bytes | None:
    """The first line the child prints that starts with ``prefix`` (within ``timeout``), or
    ``None`` if it exits or the time runs out first."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if not readable:
            break
        line = proc.stdout.readline()
        if not line:  # the child exited
            return None
        if line.startswith(prefix):
            return line.rstrip(b"\n")
    return None


def wait_for_line(proc: subprocess.Popen[bytes], expected: bytes, timeout: float) -> bool:
    """Whether the child printed ``expected`` on a line of its own within ``timeout``."""
    return read_line(proc, expected, timeout) == expected


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child (no cleanup handler, atexit or finaliser runs) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"child exited with {proc.returncode}"


def kill_when_ready(module: str, *args: str, log: Path, timeout: float = 120) -> None:
    """Run the child until it prints ``READY``, then kill -9 it."""
    proc = spawn(module, *args, log=log)
    if not wait_for_line(proc, b"READY", timeout):
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"child {' '.join(args)} never reached its crash point (exit {proc.returncode}):\n"
            + log.read_text(errors="replace")[-4000:]
        )
    kill9(proc)
