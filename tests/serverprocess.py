"""Starting and stopping the servers the tests run against (S3, GCS, Azure, Swift...).

* :func:`free_ports` picks ports on 127.0.0.1 that nothing listens on.
* :class:`ServerProcess` is one child process: started with its output in a log file, stopped
  by its PID (SIGTERM, then SIGKILL), or killed at once as a crash would.
* :func:`wait_until_ready` polls a probe until the server answers, failing early (with the
  log) if the process exits.
* :func:`unavailable` skips a test whose server cannot start, or fails it with ``CI=true``;
  :func:`session_server` and :func:`server_factory` are the bodies of the fixtures giving one
  server for the run, and private servers that a test may kill.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import pytest

from tests.databases import in_ci

STOP_TIMEOUT = 5.0


class ServerUnavailable(Exception):
    """A test server could not be started (missing program, or it never answered)."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ServerProcess:
    """One server process: ``command`` run in ``directory``, its output in ``<name>.log``."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        directory: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.directory = directory
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the process
        try:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        except OSError as exc:
            raise ServerUnavailable(f"cannot run {self.command[0]}: {exc}") from exc
        finally:
            log.close()

    def check_alive(self) -> None:
        """Raise :class:`ServerUnavailable`, with the end of the log, if the process exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ServerUnavailable(
                f"{self.name} exited with status {self.process.returncode}; see "
                f"{self.log_path}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the process by its PID: SIGTERM, then SIGKILL after a few seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_ready(
    probe: Callable[[], object],
    processes: Sequence[ServerProcess],
    timeout: float,
    what: str,
    expected: tuple[type[BaseException], ...] = (Exception,),
) -> None:
    """Call ``probe`` until it returns without raising one of ``expected``; raise
    :class:`ServerUnavailable` if a process exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        for process in processes:
            process.check_alive()
        try:
            probe()
            return
        except expected as exc:
            last = exc
            time.sleep(0.2)
    logs = "\n".join(f"-- {p.name}:\n{p.log_tail()}" for p in processes)
    raise ServerUnavailable(f"{what} did not answer within {timeout}s ({last}); logs:\n{logs}")


def unavailable(what: str, exc: BaseException) -> NoReturn:
    """Skip the test (fail it with ``CI=true``): ``what`` could not start."""
    if in_ci():
        pytest.fail(f"CI=true and {what} could not start: {exc}")
    pytest.skip(f"{what} could not start: {exc}")


class Server(Protocol):
    def stop(self) -> None: ...

    def kill(self) -> None: ...


ServerT = TypeVar("ServerT", bound=Server)


def session_server(
    what: str, start: Callable[[Path], ServerT], directory: Path
) -> Iterator[ServerT]:
    """The body of a session fixture: start a server in ``directory``, yield it, stop it."""
    try:
        server = start(directory)
    except (ServerUnavailable, OSError) as exc:
        unavailable(what, exc)
    try:
        yield server
    finally:
        server.stop()


def server_factory(
    what: str, start: Callable[[Path], ServerT], directory: Path
) -> Iterator[Callable[[], ServerT]]:
    """The body of a test fixture starting private servers that the test may kill; all are
    stopped at the end (``stop``, not ``kill``: a server's "crash" may spare processes, as
    Azurite's spares the emulator behind its proxy)."""
    servers: list[ServerT] = []

    def make() -> ServerT:
        try:
            server = start(directory / f"{what.lower()}-{len(servers)}")
        except (ServerUnavailable, OSError) as exc:
            unavailable(what, exc)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
