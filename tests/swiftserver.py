"""A real OpenStack Swift for the tests: Debian's swift-proxy, swift-account, swift-container and
swift-object packages (installed by scripts/bootstrap.sh --test), with memcached for tempauth.

:func:`start_swift` builds one-replica rings in a temporary directory, writes the four servers'
configuration (tempauth with one user, TempURL, SLO, ``workers = 0``: one process each) and
starts them, and memcached, on free ports of 127.0.0.1. Swift's modules exist only for Debian's
``/usr/bin/python3``, which runs the servers; they read ``/etc/swift/swift.conf`` (its hash
suffix) whatever ``swift_dir`` says, so the bootstrap makes sure it exists.

``swift_server`` (session scope) is one server for the run; tests that kill it start their own
with ``swift_factory``. Outside CI a server that cannot start skips the tests; with ``CI=true``
it fails them.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sa_depot.io.interfaces import FileStorage
from tests.serverprocess import (
    ServerProcess,
    ServerUnavailable,
    free_ports,
    server_factory,
    session_server,
    wait_until_ready,
)

SYSTEM_PYTHON = "/usr/bin/python3"
ACCOUNT = "test"
USER = "tester"
KEY = "testing"
TEMP_URL_KEY = "sa-depot-temp-url-key"
START_TIMEOUT = 60.0
RING_SERVERS = ("account", "container", "object")

_SERVER_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {swift_dir}
devices = {swift_dir}/devices
mount_check = false
log_level = WARNING

[pipeline:main]
pipeline = {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}
"""

#: Swift's documented order, with what the storage uses: TempURL, tempauth, SLO.
_PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats tempurl tempauth "
    "copy slo dlo proxy-logging proxy-server"
)
_PROXY_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {swift_dir}
log_level = WARNING

[pipeline:main]
pipeline = {pipeline}

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:tempauth]
use = egg:swift#tempauth
user_{account}_{username} = {key} .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}

[filter:tempurl]
use = egg:swift#tempurl

[filter:slo]
use = egg:swift#slo
# the test files are small: let segments be as small as the storage's tests make them
min_segment_size = 1

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:dlo]
use = egg:swift#dlo
"""


def _program(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise ServerUnavailable(
            f"no {name!r}: install Debian's swift-proxy, swift-account, swift-container, "
            "swift-object and memcached (bash scripts/bootstrap.sh --test does)"
        )
    return found


@dataclass
class SwiftServer:
    """A running Swift (proxy, account, container and object servers, memcached)."""

    directory: Path
    ports: dict[str, int]
    processes: list[ServerProcess] = field(default_factory=list)

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}/auth/v1.0"

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}/v1/AUTH_{ACCOUNT}"

    @property
    def user(self) -> str:
        return f"{ACCOUNT}:{USER}"

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        """SwiftStorage keyword arguments for this server (short timeouts, few retries)."""
        options: dict[str, Any] = {
            "auth_url": self.auth_url,
            "user": self.user,
            "key": KEY,
            "temp_url_key": TEMP_URL_KEY,
            "timeout": 10.0,
            "max_attempts": 2,
        }
        options.update(overrides)
        return options

    def connection(self) -> Any:
        import swiftclient

        return swiftclient.Connection(
            authurl=self.auth_url, user=self.user, key=KEY, retries=1, timeout=10
        )

    def new_container(self) -> str:
        name = f"sa-depot-{uuid.uuid4().hex[:12]}"
        self.connection().put_container(name)
        return name

    def remove_container(self, name: str) -> None:
        connection = self.connection()
        _, objects = connection.get_container(name, full_listing=True)
        for item in objects:
            connection.delete_object(name, item["name"])
        connection.delete_container(name)

    # -- process control ---------------------------------------------------------------------
    def _commands(self) -> list[tuple[str, list[str]]]:
        commands = [
            (
                "memcached",
                [
                    _program("memcached"),
                    "-l",
                    "127.0.0.1",
                    "-p",
                    str(self.ports["memcached"]),
                    "-U",
                    "0",
                    "-u",
                    getpass.getuser(),
                    "-m",
                    "16",
                ],
            )
        ]
        for kind in (*RING_SERVERS, "proxy"):
            script = _program(f"swift-{kind}-server")
            commands.append((kind, [SYSTEM_PYTHON, script, str(self.directory / f"{kind}.conf")]))
        return commands

    def start(self) -> None:
        """Start (or restart, keeping the data) every process and wait until an upload works."""
        if any(process.running for process in self.processes):
            raise RuntimeError("the server is already running")
        self.processes = [
            ServerProcess(name, command, self.directory) for name, command in self._commands()
        ]
        try:
            for process in self.processes:
                process.start()
            self._wait_until_ready()
        except ServerUnavailable:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        from swiftclient import ClientException

        def upload_once() -> None:
            connection = self.connection()
            connection.post_account({"X-Account-Meta-Temp-URL-Key": TEMP_URL_KEY})
            connection.put_container("sa-depot-probe")
            connection.put_object("sa-depot-probe", "probe", b"ok")
            connection.delete_object("sa-depot-probe", "probe")

        wait_until_ready(
            upload_once, self.processes, START_TIMEOUT, "Swift", (ClientException, OSError)
        )

    def kill(self) -> None:
        """Kill every process (SIGKILL), as a crash would: the proxy first, so that clients
        see the endpoint go rather than a proxy whose token cache went first (a 401)."""
        for process in reversed(self.processes):
            process.kill()

    def stop(self) -> None:
        """Stop every process by its PID."""
        for process in reversed(self.processes):
            process.stop()


def _build_rings(directory: Path, ports: dict[str, int]) -> None:
    builder = _program("swift-ring-builder")
    for kind in RING_SERVERS:
        ring = str(directory / f"{kind}.builder")
        for stale in directory.glob(f"{kind}.*"):
            stale.unlink()
        for args in (
            ["create", "4", "1", "1"],
            ["add", f"r1z1-127.0.0.1:{ports[kind]}/sdb1", "100"],
            ["rebalance"],
        ):
            completed = subprocess.run(
                [SYSTEM_PYTHON, builder, ring, *args], capture_output=True, text=True, check=False
            )
            if completed.returncode not in (0, 1):  # rebalance exits 1 with a warning
                raise ServerUnavailable(
                    f"swift-ring-builder {' '.join(args)} failed: {completed.stdout}"
                    f"{completed.stderr}"
                )


def start_swift(directory: Path) -> SwiftServer:
    """Configure a Swift whose data lives in ``directory``, and start it."""
    if not Path(SYSTEM_PYTHON).exists():
        raise ServerUnavailable(f"no {SYSTEM_PYTHON}, whose modules Swift's packages install")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "devices" / "sdb1").mkdir(parents=True, exist_ok=True)
    last: ServerUnavailable | None = None
    for _ in range(3):  # a free port may be taken between choosing and binding it
        ports = dict(zip(("memcached", *RING_SERVERS, "proxy"), free_ports(5), strict=True))
        _build_rings(directory, ports)
        common = {"user": getpass.getuser(), "swift_dir": directory}
        for kind in RING_SERVERS:
            (directory / f"{kind}.conf").write_text(
                _SERVER_CONF.format(kind=kind, port=ports[kind], **common)
            )
        (directory / "proxy.conf").write_text(
            _PROXY_CONF.format(
                port=ports["proxy"],
                pipeline=_PIPELINE,
                memcached_port=ports["memcached"],
                account=ACCOUNT,
                username=USER,
                key=KEY,
                **common,
            )
        )
        server = SwiftServer(directory, ports)
        try:
            server.start()
            return server
        except ServerUnavailable as exc:
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="session")
def swift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftServer]:
    yield from session_server("Swift", start_swift, tmp_path_factory.mktemp("swift"))


@pytest.fixture(scope="session")
def swift_container(swift_server: SwiftServer) -> str:
    return swift_server.new_container()


@pytest.fixture
def swift_factory(tmp_path: Path) -> Iterator[Callable[[], SwiftServer]]:
    yield from server_factory("Swift", start_swift, tmp_path)


# -- the contract suite's Swift backend (registered in tests/storages.py) ----------------------
@contextmanager
def swift_contract_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    """A fresh SwiftStorage: the run's container, under a prefix of its own."""
    from sa_depot.io.swift import SwiftStorage
    from tests.storages import CONTRACT_CHUNK_SIZE

    server: SwiftServer = request.getfixturevalue("swift_server")
    container: str = request.getfixturevalue("swift_container")
    storage = SwiftStorage(
        container,
        prefix=f"contract-{uuid.uuid4().hex[:12]}/",
        chunk_size=CONTRACT_CHUNK_SIZE,
        **server.storage_options(),
    )
    yield storage
    for name in swift_raw_contents(storage):
        storage.connection.delete_object(container, name)


def swift_child_config(storage: FileStorage) -> dict[str, str]:
    from sa_depot.io.swift import SwiftStorage

    assert isinstance(storage, SwiftStorage) and storage.auth_url and storage.user
    return {
        "depot.backend": "sa_depot.io.swift.SwiftStorage",
        "depot.container": storage.container,
        "depot.prefix": storage.prefix,
        "depot.auth_url": storage.auth_url,
        "depot.user": storage.user,
        "depot.key": KEY,
        "depot.max_attempts": "2",
    }


def swift_raw_contents(storage: FileStorage) -> set[str]:
    """Every object under the storage's prefix, segments included."""
    from sa_depot.io.swift import SwiftStorage

    assert isinstance(storage, SwiftStorage)
    _, objects = storage.connection.get_container(
        storage.container, prefix=storage.prefix, full_listing=True
    )
    return {item["name"] for item in objects}
