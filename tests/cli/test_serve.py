"""``sa-depot serve``: the configured storages over HTTP, in a real process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sa_depot.io.local import LocalFileStorage
from tests.cli.conftest import Invoker, assert_user_error
from tests.cli.servers import cli_server


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(
        f"""
[storages.default]
storage_path = "{tmp_path / "files"}"

[storages.private]
storage_path = "{tmp_path / "private"}"

[serve]
mountpoint = "/files"
secret = "a-secret-of-at-least-16-bytes"

[serve.policies.private]
cache = "no-store"
require_signature = true
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_serve_answers_file_requests(config: Path, tmp_path: Path) -> None:
    public = LocalFileStorage(tmp_path / "files")
    file_id = public.create(b"Hello over HTTP", filename="hello.txt")
    private = LocalFileStorage(tmp_path / "private")
    secret_id = private.create(b"secret")

    with cli_server(["--config", str(config), "serve", "--port", "0"], cwd=tmp_path) as server:
        assert any("/files/<storage>/<file_id>" in line for line in server.banner)
        assert "default, private" in server.banner[0]

        response = requests.get(f"{server.base_url}/files/default/{file_id}", timeout=10)
        assert response.status_code == 200
        assert response.content == b"Hello over HTTP"
        # one access log line per request, with the status and the size
        logged = server.wait_for_line(f"GET /files/default/{file_id} ")
        assert logged.endswith(f'"GET /files/default/{file_id} HTTP/1.1" 200 15')
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["X-Content-Type-Options"] == "nosniff"

        ranged = requests.get(
            f"{server.base_url}/files/default/{file_id}", headers={"Range": "bytes=6-"}, timeout=10
        )
        assert ranged.status_code == 206
        assert ranged.content == b"over HTTP"

        head = requests.head(f"{server.base_url}/files/default/{file_id}", timeout=10)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == "15"

        # the policy of [serve.policies.private]: signed links only
        refused = requests.get(f"{server.base_url}/files/private/{secret_id}", timeout=10)
        assert refused.status_code == 403
        assert server.wait_for_line(f'GET /files/private/{secret_id} HTTP/1.1" 403')
        # a signature is never written to the log
        signed = f"/files/private/{secret_id}?expires=9999999999&signature=abcdef0123"
        requests.get(server.base_url + signed, timeout=10)
        line = server.wait_for_line(f"GET /files/private/{secret_id}\\?")
        assert "abcdef0123" not in line
        assert "signature=***" in line

        # nothing outside the mountpoint and the configured storages
        assert requests.get(f"{server.base_url}/", timeout=10).status_code == 404
        assert (
            requests.get(f"{server.base_url}/files/other/{file_id}", timeout=10).status_code == 404
        )


def test_serve_options_override_the_file(config: Path, tmp_path: Path) -> None:
    file_id = LocalFileStorage(tmp_path / "files").create(b"data")
    args = ["--config", str(config), "serve", "--port", "0", "--mountpoint", "/media"]
    with cli_server(args, cwd=tmp_path) as server:
        assert requests.get(f"{server.base_url}/media/default/{file_id}", timeout=10).ok
        old = requests.get(f"{server.base_url}/files/default/{file_id}", timeout=10)
        assert old.status_code == 404


def test_serve_refuses_a_busy_port(sa_depot: Invoker, config: Path, busy_port: int) -> None:
    result = sa_depot("--config", str(config), "serve", "--port", str(busy_port))
    assert_user_error(result, f"cannot listen on 127.0.0.1:{busy_port}", "--port")


def test_serve_refuses_a_bad_policy(sa_depot: Invoker, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        f'[storages.default]\nstorage_path = "{tmp_path}"\n'
        '[serve.policies.default]\ncache = "public"\nrequire_signature = true\n',
        encoding="utf-8",
    )
    result = sa_depot("--config", str(path), "serve", "--port", "0")
    assert_user_error(result, "[serve.policies.default]", "cache='public'")


def test_serve_refuses_a_policy_for_an_unknown_storage(sa_depot: Invoker, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        f'[storages.default]\nstorage_path = "{tmp_path}"\n'
        '[serve.policies.typo]\ncache = "public"\n',
        encoding="utf-8",
    )
    assert_user_error(sa_depot("-c", str(path), "serve"), "no storage named 'typo'")


def test_serve_refuses_an_out_of_range_port(sa_depot: Invoker, config: Path) -> None:
    result = sa_depot("--config", str(config), "serve", "--port", "70000")
    assert_user_error(result, "70000", exit_code=2)
