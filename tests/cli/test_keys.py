"""``sa-depot ls``, ``stat`` and ``copy`` on files named by readable keys, next to UUID ones,
and the ``key_template`` option of a configured storage."""

from __future__ import annotations

import json
from pathlib import Path

from sa_depot.io.local import LocalFileStorage
from tests.cli.conftest import Invoker

Storages = tuple[Path, LocalFileStorage, LocalFileStorage]
KEY = "{tenant}/{yyyy}/{mm}/{id}{ext}"


def test_ls_lists_keyed_and_uuid_ids(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    ids = [
        default.create(b"one", "a.pdf", key=KEY, key_values={"tenant": "acme"}),
        default.create(b"two", "b.txt", key="{tenant}/{filename}", key_values={"tenant": "z"}),
        default.create(b"three"),
    ]
    result = sa_depot("-c", str(config), "ls", "default")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == sorted(ids)


def test_stat_of_a_key_by_path_and_by_url(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    file_id = default.create(b"keyed", "a.pdf", key=KEY, key_values={"tenant": "acme"})
    for argument in (
        f"default/{file_id}",
        f"/depot/default/{file_id}",
        f"/depot/default/{file_id}/a.pdf",
        f"https://example.com/depot/default/{file_id}?expires=1&signature=x",
    ):
        result = sa_depot("-c", str(config), "stat", "--json", argument)
        assert result.exit_code == 0, (argument, result.output)
        data = json.loads(result.stdout)
        assert data["file_id"] == file_id and data["path"] == f"default/{file_id}", argument
        assert data["filename"] == "a.pdf"


def test_copy_keeps_keys(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, media = two_storages
    file_id = default.create(b"keyed", "a.pdf", key=KEY, key_values={"tenant": "acme"})
    other = default.create(b"plain")
    result = sa_depot("-c", str(config), "copy", "-q", "default", "media", "--id", file_id)
    assert result.exit_code == 0, result.output
    assert media.list() == [file_id]
    with media.get(file_id) as stored:
        assert stored.read() == b"keyed"
    result = sa_depot("-c", str(config), "copy", "-q", "default", "media")
    assert result.exit_code == 0, result.output
    assert sorted(media.list()) == sorted([file_id, other])
