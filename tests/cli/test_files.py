"""``sa-depot ls`` and ``sa-depot stat`` on real local storages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sa_depot.io.local import LocalFileStorage
from tests.cli.conftest import Invoker, assert_user_error

Storages = tuple[Path, LocalFileStorage, LocalFileStorage]


def test_ls_prints_the_sorted_ids(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, media = two_storages
    ids = [default.create(b"one"), default.create(b"two"), default.create(b"three")]
    media.create(b"elsewhere")
    result = sa_depot("-c", str(config), "ls", "default")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == sorted(ids)


def test_ls_of_an_empty_storage_says_so(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, _ = two_storages
    result = sa_depot("-c", str(config), "ls", "default")
    assert result.exit_code == 0
    assert result.stdout == ""  # nothing for a script to mistake for an id
    assert result.stderr == "storage 'default' holds no files\n"


def test_ls_of_a_missing_directory_is_an_error_and_creates_nothing(
    sa_depot: Invoker, tmp_path: Path
) -> None:
    typo = tmp_path / "fiels"
    config = tmp_path / "typo.toml"
    config.write_text(f'[storages.default]\nstorage_path = "{typo}"\n')
    for args in (["ls", "default"], ["ls", "-l", "default"], ["ls"]):
        result = sa_depot("-c", str(config), *args)
        if args == ["ls"]:  # listing the storages reads no directory
            assert result.exit_code == 0, result.output
            assert str(typo) in result.stdout
            continue
        assert_user_error(result, str(typo), "storage directory does not exist", "storage_path")
    assert not typo.exists()

    missing = "0b4e28ba-2fa1-41d2-883f-0016d3cca427"
    result = sa_depot("-c", str(config), "stat", f"default/{missing}")
    assert_user_error(result, "does not exist", "the storage directory does not exist")
    assert not typo.exists()


def test_ls_long_shows_size_type_and_filename(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    file_id = default.create(b"x" * 1536, filename="report.csv", content_type="text/csv")
    result = sa_depot("-c", str(config), "ls", "-l", "default")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(file_id)
    assert "1.5 KiB" in line
    assert "text/csv" in line
    assert line.endswith("report.csv")


def test_ls_json(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    file_id = default.create(b"hello", filename="hello.txt")
    result = sa_depot("-c", str(config), "ls", "--json", "default")
    (entry,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert entry["path"] == f"default/{file_id}"
    assert entry["filename"] == "hello.txt"
    assert entry["content_length"] == 5
    assert entry["checksum"] == hashlib.sha256(b"hello").hexdigest()


def test_ls_of_an_unknown_storage(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, _ = two_storages
    result = sa_depot("-c", str(config), "ls", "nope")
    assert_user_error(result, "no storage named 'nope'", "'default'", "'media'")


def test_stat_shows_the_metadata(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, media = two_storages
    file_id = media.create(b"Hello World", filename="hello.txt")
    result = sa_depot("-c", str(config), "stat", f"media/{file_id}")
    assert result.exit_code == 0, result.output
    lines = dict(
        (label.strip(), value.strip())
        for label, _, value in (line.partition(":") for line in result.stdout.splitlines())
    )
    assert lines["path"] == f"media/{file_id}"
    assert lines["filename"] == "hello.txt"
    assert lines["content type"] == "text/plain"
    assert lines["size"] == "11 bytes (11 B)"
    assert lines["sha256"] == hashlib.sha256(b"Hello World").hexdigest()
    assert lines["local path"].startswith(str(media.storage_path))
    assert lines["public url"] == "-"


def test_stat_through_an_alias_as_json(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, media = two_storages
    file_id = media.create(b"avatar")
    result = sa_depot("-c", str(config), "stat", "--json", f"avatars/{file_id}")
    data = json.loads(result.stdout)
    assert data["file_id"] == file_id
    assert data["content_length"] == 6
    assert data["last_modified"].endswith("+00:00")  # timezone-aware


def test_stat_verify_accepts_an_intact_file(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    file_id = default.create(b"intact" * 1000)
    result = sa_depot("-c", str(config), "stat", "--verify", f"default/{file_id}")
    assert result.exit_code == 0, result.output
    assert "content matches the checksum" in result.stdout


def corrupt(storage: LocalFileStorage, content: bytes = b"A" * 100) -> str:
    file_id = storage.create(content)
    with storage.get(file_id) as stored:
        blob = Path(str(stored.local_path))
    blob.write_bytes(b"B" * len(content))  # bit rot, same length
    return file_id


def test_stat_verify_detects_a_corrupt_file(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    file_id = corrupt(default)
    result = sa_depot("-c", str(config), "stat", "--verify", f"default/{file_id}")
    assert_user_error(result, file_id, "is corrupt", "does not match the stored checksum")
    assert "verified:      NO" in result.stdout  # the metadata is still shown
    assert f"path:          default/{file_id}" in result.stdout


def test_stat_json_verify_of_a_corrupt_file_is_json_with_the_reason(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, default, _ = two_storages
    file_id = corrupt(default)
    result = sa_depot("-c", str(config), "stat", "--json", "--verify", f"default/{file_id}")
    assert result.exit_code == 1
    data = json.loads(result.stdout)  # nothing but the JSON object on standard output
    assert data["verified"] is False
    assert "is corrupt" in data["error"]
    assert data["path"] == f"default/{file_id}"
    assert data["checksum"] == hashlib.sha256(b"A" * 100).hexdigest()
    assert "is corrupt" in result.stderr


def test_stat_json_verify_of_an_intact_file(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    file_id = default.create(b"intact")
    result = sa_depot("-c", str(config), "stat", "--json", "--verify", f"default/{file_id}")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verified"] is True
    assert "error" not in data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stat", "--json", "default/0b4e28ba-2fa1-41d2-883f-0016d3cca427"], "does not exist"),
        (["stat", "--json", "default/../etc/passwd"], "invalid file id"),
        (["stat", "--json", "nope/0b4e28ba-2fa1-41d2-883f-0016d3cca427"], "no storage named"),
        (["stat", "--json", "/not/a/file/url/at/all"], "is not STORAGE/FILE_ID"),
        (["stat", "--json"], "Missing argument"),
        (["stat", "--json", "--verify", "--bogus", "default/x"], "No such option"),
        (["ls", "--json", "nope"], "no storage named 'nope'"),
    ],
)
def test_every_json_error_is_json(
    sa_depot: Invoker, two_storages: Storages, args: list[str], message: str
) -> None:
    config, _, _ = two_storages
    result = sa_depot("-c", str(config), *args)
    assert result.exit_code != 0
    data = json.loads(result.stdout)
    assert message in data["error"]
    assert message in result.stderr


def test_ls_json_of_a_missing_directory_is_json(sa_depot: Invoker, tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text(f'[storages.default]\nstorage_path = "{tmp_path / "nowhere"}"\n')
    result = sa_depot("-c", str(config), "ls", "--json", "default")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert "storage directory does not exist" in json.loads(line)["error"]


@pytest.mark.parametrize(
    "pasted",
    [
        "/depot/{storage}/{file_id}",
        "/depot/{storage}/{file_id}/hello.txt",
        "http://127.0.0.1:8765/depot/{storage}/{file_id}/hello.txt?expires=1&signature=ab",
        "/files/{storage}/{file_id}",  # served under another mountpoint
    ],
)
def test_stat_understands_a_pasted_url(
    sa_depot: Invoker, two_storages: Storages, pasted: str
) -> None:
    config, _, media = two_storages
    file_id = media.create(b"Hello World", filename="hello.txt")
    for storage in ("media", "avatars"):  # a storage or an alias
        argument = pasted.format(storage=storage, file_id=file_id)
        result = sa_depot("-c", str(config), "stat", "--json", argument)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["path"] == f"{storage}/{file_id}"


def test_stat_explains_a_url_path_it_cannot_read(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, _ = two_storages
    result = sa_depot("-c", str(config), "stat", "/depot/elsewhere/0b4e28ba")
    assert_user_error(
        result,
        "'/depot/elsewhere/0b4e28ba' is not STORAGE/FILE_ID",
        "/depot/<storage>/<file_id>",
        "default, media, avatars",
    )


def test_stat_of_bad_paths(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, _ = two_storages
    missing = "0b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert_user_error(
        sa_depot("-c", str(config), "stat", f"default/{missing}"), missing, "does not exist"
    )
    assert_user_error(
        sa_depot("-c", str(config), "stat", "default/../etc/passwd"), "invalid file id"
    )
    assert_user_error(sa_depot("-c", str(config), "stat", "no-slash"), "'storage/file_id'")
    assert_user_error(
        sa_depot("-c", str(config), "stat", f"nope/{missing}"), "no storage named 'nope'"
    )


def test_stat_needs_an_argument(sa_depot: Invoker, two_storages: Storages) -> None:
    config, _, _ = two_storages
    assert_user_error(
        sa_depot("-c", str(config), "stat"), "Missing argument 'STORAGE/FILE_ID'", exit_code=2
    )
