"""Azurite, Microsoft's Azure Storage emulator, for the tests.

scripts/bootstrap.sh --test installs it from the npm registry into ``.cache/npm`` (Node.js runs
it). It listens on a free port of 127.0.0.1 with its data in a temporary directory, telemetry
off. Azurite loses its database when killed, so a "crash" (:meth:`Azurite.kill`) kills a TCP
proxy in front of it (tests/tcpproxy.py) instead: every connection is cut at once, and
:meth:`Azurite.start` brings the proxy back with the data intact. It checks shared keys and
SAS signatures, as Azure does, with the well-known development account below.

``azure_server`` (session scope) is one emulator for the run, ``azure_container`` a container
in it; ``azurite_factory`` starts private emulators that a test may kill.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Azurite's built-in development account (documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 60.0


def azurite_binary() -> str:
    local = REPO_ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if found is None:
        raise ServerUnavailable(
            "no azurite-blob: bash scripts/bootstrap.sh --test installs Azurite from npm"
        )
    return found


@dataclass
class Azurite:
    """One running Azurite (blob service only)."""

    directory: Path
    port: int
    #: The port clients use: a TCP proxy's, in front of Azurite's.
    proxy_port: int
    process: ServerProcess | None = None
    proxy: ServerProcess | None = None

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        """AzureBlobStorage keyword arguments for this emulator (short timeouts)."""
        options: dict[str, Any] = {
            "connection_string": self.connection_string,
            "connect_timeout": 3.0,
            "read_timeout": 10.0,
            "max_attempts": 2,
        }
        options.update(overrides)
        return options

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        # No retries: the library's default backoff (15 s) would slow every readiness probe.
        return BlobServiceClient.from_connection_string(self.connection_string, retry_total=0)

    def new_container(self) -> str:
        name = f"sa-depot-{uuid.uuid4().hex[:12]}"
        self.service().create_container(name)
        return name

    def start(self) -> None:
        """Start the emulator and its proxy (after :meth:`kill`: the proxy) and wait until it
        answers."""
        if self.process is None or not self.process.running:
            self._start_azurite()
        self.proxy = ServerProcess(
            "tcpproxy",
            [sys.executable, "-m", "tests.tcpproxy", str(self.proxy_port), str(self.port)],
            self.directory,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        self.proxy.start()
        service = self.service()
        try:
            wait_until_ready(
                lambda: list(service.list_containers()),
                [self.process, self.proxy],  # type: ignore[list-item]
                START_TIMEOUT,
                "Azurite",
            )
        except ServerUnavailable:
            self.stop()
            raise

    def _start_azurite(self) -> None:
        command = [
            azurite_binary(),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--location", str(self.directory / "data"),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",  # the client library may be newer than the emulator
        ]  # fmt: skip
        self.process = ServerProcess("azurite", command, self.directory)
        self.process.start()

    def kill(self) -> None:
        """Cut every connection at once (the proxy, SIGKILL); Azurite keeps its data."""
        if self.proxy is not None:
            self.proxy.kill()

    def stop(self) -> None:
        for process in (self.proxy, self.process):
            if process is not None:
                process.stop()


def start_azurite(directory: Path) -> Azurite:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    last: ServerUnavailable | None = None
    for _ in range(3):  # a free port may be taken between choosing and binding it
        server = Azurite(directory, *free_ports(2))
        try:
            server.start()
            return server
        except ServerUnavailable as exc:
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    yield from session_server("Azurite", start_azurite, tmp_path_factory.mktemp("azurite"))


@pytest.fixture(scope="session")
def azure_container(azure_server: Azurite) -> str:
    return azure_server.new_container()


@pytest.fixture
def azurite_factory(tmp_path: Path) -> Iterator[Callable[[], Azurite]]:
    yield from server_factory("Azurite", start_azurite, tmp_path)


# -- the contract suite's Azure backend (registered in tests/storages.py) ----------------------
@contextmanager
def azure_contract_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    """A fresh AzureBlobStorage: the run's container, under a prefix of its own."""
    from sa_depot.io.azure import AzureBlobStorage
    from tests.storages import CONTRACT_CHUNK_SIZE

    server: Azurite = request.getfixturevalue("azure_server")
    container: str = request.getfixturevalue("azure_container")
    storage = AzureBlobStorage(
        container,
        prefix=f"contract-{uuid.uuid4().hex[:12]}/",
        chunk_size=CONTRACT_CHUNK_SIZE,
        **server.storage_options(),
    )
    yield storage
    for name in azure_raw_contents(storage):
        storage.client.delete_blob(name)


def azure_child_config(storage: FileStorage) -> dict[str, str]:
    from sa_depot.io.azure import AzureBlobStorage

    assert isinstance(storage, AzureBlobStorage) and storage._connection_string
    return {
        "depot.backend": "sa_depot.io.azure.AzureBlobStorage",
        "depot.container": storage.container,
        "depot.prefix": storage.prefix,
        "depot.connection_string": storage._connection_string,
    }


def azure_raw_contents(storage: FileStorage) -> set[str]:
    """Every blob under the storage's prefix (uncommitted blocks are no blob: invisible)."""
    from sa_depot.io.azure import AzureBlobStorage

    assert isinstance(storage, AzureBlobStorage)
    return set(storage.client.list_blob_names(name_starts_with=storage.prefix))
