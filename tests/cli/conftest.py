"""Fixtures of the command-line tests: a CliRunner and configuration files on disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sa_depot.cli import cli
from sa_depot.io.local import LocalFileStorage

#: Environment variables of the command line, cleared so that the host's cannot leak in.
CLI_VARIABLES = ("SA_DEPOT_CONFIG", "SA_DEPOT_DATABASE_URL", "SA_DEPOT_DEFAULT_STORAGE")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name in CLI_VARIABLES or name.startswith(("SA_DEPOT_STORAGE__", "SA_DEPOT_SECRET")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./sa_depot.toml of the checkout is picked up
    yield


class Invoker:
    """Runs ``sa-depot`` in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(cli, list(args), env=env, prog_name="sa-depot")


@pytest.fixture
def sa_depot() -> Invoker:
    return Invoker()


def assert_user_error(result: Result, *fragments: str, exit_code: int = 1) -> None:
    """A clear message naming the problem, a non-zero exit, and no traceback."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.fixture
def two_storages(tmp_path: Path) -> tuple[Path, LocalFileStorage, LocalFileStorage]:
    """A TOML file configuring 'default' and 'media' (local), an alias and a default."""
    default_dir, media_dir = tmp_path / "files", tmp_path / "media"
    config = tmp_path / "depot.toml"
    config.write_text(
        f"""
default = "media"

[storages.default]
storage_path = "{default_dir}"

[storages.media]
backend = "sa_depot.io.local.LocalFileStorage"
storage_path = "{media_dir}"
fsync = false

[aliases]
avatars = "media"
""",
        encoding="utf-8",
    )
    return config, LocalFileStorage(default_dir), LocalFileStorage(media_dir)
