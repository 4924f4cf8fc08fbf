"""Where ``sa-depot`` finds its storages: TOML, filedepot-style ini, environment variables,
and the messages it gives when the configuration is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sa_depot.io.local import LocalFileStorage
from tests.cli.conftest import Invoker, assert_user_error


def storages(result_output: str) -> dict[str, dict[str, object]]:
    entries = [json.loads(line) for line in result_output.splitlines() if line.strip()]
    return {entry["name"]: entry for entry in entries}


def test_toml_configures_storages_aliases_and_default(
    sa_depot: Invoker, two_storages: tuple[Path, LocalFileStorage, LocalFileStorage]
) -> None:
    config, _, _ = two_storages
    result = sa_depot("--config", str(config), "ls", "--json")
    assert result.exit_code == 0, result.output
    listed = storages(result.stdout)
    assert list(listed) == ["default", "media"]
    assert listed["media"]["default"] is True
    assert listed["media"]["aliases"] == ["avatars"]
    assert listed["default"]["backend"] == "sa_depot.io.local.LocalFileStorage"

    text = sa_depot("--config", str(config), "ls")
    assert "media  LocalFileStorage" in text.stdout
    assert "(default; aliases: avatars)" in text.stdout


def test_an_alias_lists_its_storage(
    sa_depot: Invoker, two_storages: tuple[Path, LocalFileStorage, LocalFileStorage]
) -> None:
    config, _, media = two_storages
    file_id = media.create(b"avatar", filename="me.png")
    result = sa_depot("-c", str(config), "ls", "avatars")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [file_id]


def test_ini_with_filedepot_keys(sa_depot: Invoker, tmp_path: Path) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "development.ini").write_text(
        """
[server:main]
port = 6543

[app:main]
use = egg:myapp
sqlalchemy.url = sqlite:///%(here)s/app.sqlite
depot.storage_path = %(here)s/files
depot.media.backend = depot.io.memory.MemoryFileStorage
sa_depot.aliases.avatars = media
""",
        encoding="utf-8",
    )
    result = sa_depot("--config", str(folder / "development.ini"), "ls", "--json")
    assert result.exit_code == 0, result.output
    listed = storages(result.stdout)
    assert listed["default"]["default"] is True
    assert listed["media"]["backend"] == "sa_depot.io.memory.MemoryFileStorage"  # filedepot path
    assert listed["media"]["aliases"] == ["avatars"]
    # %(here)s is the ini file's folder, as in PasteDeploy; listing creates nothing
    assert listed["default"]["location"] == str(folder / "files")
    assert not (folder / "files").exists()


def test_config_file_from_the_environment(
    sa_depot: Invoker, two_storages: tuple[Path, LocalFileStorage, LocalFileStorage]
) -> None:
    config, default, _ = two_storages
    file_id = default.create(b"x")
    result = sa_depot("ls", "default", env={"SA_DEPOT_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [file_id]


def test_sa_depot_toml_in_the_working_directory_is_read(sa_depot: Invoker, tmp_path: Path) -> None:
    (tmp_path / "sa_depot.toml").write_text(
        f'[storages.here]\nstorage_path = "{tmp_path / "here"}"\n', encoding="utf-8"
    )
    result = sa_depot("ls")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("here  LocalFileStorage")


def test_storages_from_environment_variables_alone(sa_depot: Invoker, tmp_path: Path) -> None:
    stored = LocalFileStorage(tmp_path / "env-files")
    file_id = stored.create(b"from env")
    env = {
        "SA_DEPOT_STORAGE__UPLOADS__STORAGE_PATH": str(tmp_path / "env-files"),
        "SA_DEPOT_STORAGE__UPLOADS__FSYNC": "false",
    }
    result = sa_depot("ls", "uploads", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [file_id]


def test_environment_overrides_the_file(
    sa_depot: Invoker,
    two_storages: tuple[Path, LocalFileStorage, LocalFileStorage],
    tmp_path: Path,
) -> None:
    config, _, _ = two_storages
    other = LocalFileStorage(tmp_path / "elsewhere")
    file_id = other.create(b"elsewhere")
    env = {
        "SA_DEPOT_STORAGE__MEDIA__STORAGE_PATH": str(tmp_path / "elsewhere"),
        "SA_DEPOT_DEFAULT_STORAGE": "default",
    }
    result = sa_depot("-c", str(config), "ls", "media", env=env)
    assert result.stdout.split() == [file_id]
    listed = storages(sa_depot("-c", str(config), "ls", "--json", env=env).stdout)
    assert listed["default"]["default"] is True


@pytest.mark.parametrize(
    ("filename", "content", "fragments"),
    [
        ("bad.toml", "[storages.default\n", ["bad.toml", "not valid TOML"]),
        ("typo.toml", "storage = 1\n", ["unknown key(s) storage", "expected"]),
        (
            "option.toml",
            '[storages.default]\nstorage_path = "x"\ncolour = "blue"\n',
            ["storage 'default'", "unknown option 'colour'", "storage_path"],
        ),
        (
            "backend.toml",
            '[storages.s]\nbackend = "nowhere.Storage"\n',
            ["storage 's'", "cannot import backend module 'nowhere'"],
        ),
        (
            "coerce.ini",
            "[sa_depot]\ndepot.storage_path = x\ndepot.fsync = maybe\n",
            ["option 'fsync'", "'maybe'"],
        ),
        ("empty.toml", "", ["no storage is configured", "SA_DEPOT_STORAGE__"]),
        (
            "alias.toml",
            '[storages.a]\nstorage_path = "a"\n[aliases]\nb = "nope"\n',
            ["no storage named 'nope'"],
        ),
        (
            "ambiguous.ini",
            "[one]\ndepot.storage_path = a\n[two]\ndepot.storage_path = b\n",
            ["several sections", "one, two"],
        ),
        ("unknown.ini", "[sa_depot]\nsa_depot.colour = blue\n", ["unknown key sa_depot.colour"]),
        ("port.ini", "[sa_depot]\nsa_depot.serve.port = eighty\n", ["must be an integer"]),
    ],
)
def test_a_wrong_configuration_is_named(
    sa_depot: Invoker, tmp_path: Path, filename: str, content: str, fragments: list[str]
) -> None:
    (tmp_path / filename).write_text(content, encoding="utf-8")
    result = sa_depot("--config", str(tmp_path / filename), "ls")
    assert_user_error(result, *fragments)


def test_a_missing_config_file_is_named(sa_depot: Invoker) -> None:
    assert_user_error(sa_depot("--config", "nope.toml", "ls"), "'nope.toml' does not exist")
    assert_user_error(
        sa_depot("ls", env={"SA_DEPOT_CONFIG": "gone.ini"}), "'gone.ini' does not exist"
    )


def test_a_malformed_storage_variable_is_named(sa_depot: Invoker) -> None:
    result = sa_depot("ls", env={"SA_DEPOT_STORAGE__ONLYNAME": "x"})
    assert_user_error(result, "SA_DEPOT_STORAGE__ONLYNAME", "<NAME>__<OPTION>")


def test_no_configuration_at_all(sa_depot: Invoker) -> None:
    assert_user_error(sa_depot("ls"), "no storage is configured", "--config")
