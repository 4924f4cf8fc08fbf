"""The example applications of examples/, run as their users run them: each in a real server
process (waitress for Flask, uvicorn for FastAPI) on a PostgreSQL database of its own, with its
files in the test's temporary folder; and a headless Chromium for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.databases import ServerUnavailable, in_ci, scratch_database
from tests.webservers import ServerProcess, server_process


@dataclass
class Example:
    server: ServerProcess
    files: Path  # the local storage's directory
    database_url: str  # as the sync psycopg driver names it


def postgresql_database() -> Iterator[str]:
    try:
        with scratch_database("postgresql") as url:
            yield url
    except ServerUnavailable as exc:
        if in_ci():
            pytest.fail(f"CI=true and the PostgreSQL server is unreachable: {exc}")
        pytest.skip(f"PostgreSQL server unreachable: {exc}")


@pytest.fixture(scope="module")
def flask_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    folder = tmp_path_factory.mktemp("flask-example")
    for url in postgresql_database():
        env = {"DATABASE_URL": url, "STORE_PATH": str(folder / "uploads")}
        argv = ["waitress", "--listen=127.0.0.1:{port}", "examples.flask_app:app"]
        with server_process(argv, folder / "waitress.log", env=env) as server:
            yield Example(server, folder / "uploads" / ".sa_depot", url)


@pytest.fixture(scope="module")
def fastapi_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    folder = tmp_path_factory.mktemp("fastapi-example")
    for url in postgresql_database():
        env = {
            "DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql+asyncpg://"),
            "FILES_PATH": str(folder / "files"),
        }
        argv = ["uvicorn", "examples.fastapi_app:app", "--port", "{port}"]
        with server_process(argv, folder / "uvicorn.log", env=env) as server:
            yield Example(server, folder / "files", url)
