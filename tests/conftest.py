"""Fixtures shared by the whole suite.

* ``DepotManager`` state is reset around every test.
* ``db_url`` is parametrised over SQLite, PostgreSQL and MariaDB (real servers); ``pg_url`` and
  ``mariadb_url`` give one server only. Each run uses databases of its own (see databases.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sa_depot.manager import DepotManager
from tests.azureserver import azure_container, azure_server, azurite_factory  # noqa: F401
from tests.browser import find_chromium
from tests.cli.chromium import Browser
from tests.databases import ServerUnavailable, in_ci, scratch_database
from tests.gcsserver import gcs_bucket, gcs_factory, gcs_server, gcs_token_server  # noqa: F401
from tests.s3server import s3_bucket, s3_server, seaweed_factory  # noqa: F401
from tests.swiftserver import swift_container, swift_factory, swift_server  # noqa: F401

DATABASES = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture(autouse=True)
def _reset_depot_manager() -> Iterator[None]:
    DepotManager.reset()
    yield
    DepotManager.reset()


def _server_database(kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    try:
        with scratch_database(kind) as url:
            yield url
    except ServerUnavailable as exc:
        if in_ci():
            pytest.fail(f"CI=true and the {kind} server is unreachable: {exc}")
        pytest.skip(f"{kind} server unreachable: {exc}")


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a scratch PostgreSQL database for this run."""
    yield from _server_database("postgresql", request)


@pytest.fixture(scope="session")
def mariadb_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a scratch MariaDB database for this run."""
    yield from _server_database("mariadb", request)


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each of SQLite, PostgreSQL and MariaDB.

    Tests create their tables and drop them at teardown (the server databases live for the
    whole run).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    return str(
        request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium, for the browser tests (a failure in CI when it is not installed)."""
    executable = find_chromium()
    if executable is None:
        message = "chromium is not installed (apt-get install chromium)"
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    running = Browser(executable, tmp_path / "chromium-profile")
    try:
        yield running
    finally:
        running.close()
