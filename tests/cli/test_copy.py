"""``sa-depot copy`` between real local storages configured in a TOML file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sa_depot.io.interfaces import FileInfo, StoredFile
from sa_depot.io.local import LocalFileStorage
from tests.cli.conftest import Invoker, assert_user_error

Storages = tuple[Path, LocalFileStorage, LocalFileStorage]


def seed(storage: LocalFileStorage, count: int = 4) -> dict[str, bytes]:
    contents = {}
    for i in range(count):
        data = os.urandom(1000 * (i + 1))
        contents[storage.create(data, filename=f"file{i}.bin")] = data
    return contents


def assert_identical(
    source: LocalFileStorage, destination: LocalFileStorage, contents: dict[str, bytes]
) -> None:
    """The destination holds every file under its id, byte-identical, with its metadata."""
    assert sorted(destination.list()) == sorted(contents)
    for file_id, data in contents.items():
        with destination.get(file_id) as copy:
            assert copy.read() == data
        original, copied = source.info(file_id), destination.info(file_id)
        assert (copied.filename, copied.content_type, copied.checksum, copied.last_modified) == (
            original.filename,
            original.content_type,
            original.checksum,
            original.last_modified,
        )


def summary(output: str) -> tuple[int, int, int]:
    match = re.search(r"copied (\d+) file.*skipped (\d+) .*failed (\d+)", output)
    assert match, output
    copied, skipped, failed = match.groups()
    return int(copied), int(skipped), int(failed)


def test_copy_copies_every_file_then_a_second_run_skips_them(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, default, media = two_storages
    contents = seed(default)

    result = sa_depot("-c", str(config), "copy", "default", "media")

    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (4, 0, 0)
    assert "9.8 KiB" in result.stdout  # 1000 + 2000 + 3000 + 4000 bytes
    assert_identical(default, media, contents)

    again = sa_depot("-c", str(config), "copy", "default", "media")
    assert again.exit_code == 0, again.output
    assert summary(again.stdout) == (0, 4, 0)
    assert_identical(default, media, contents)


def test_copy_shows_a_progress_bar_on_stderr(sa_depot: Invoker, two_storages: Storages) -> None:
    config, default, _ = two_storages
    seed(default, 2)
    result = sa_depot("-c", str(config), "copy", "default", "media")
    assert result.exit_code == 0, result.output
    assert "copying default -> media" in result.stderr
    assert "2/2" in result.stderr

    quiet = sa_depot("-c", str(config), "copy", "-q", "default", "media")
    assert quiet.stderr == ""
    assert summary(quiet.stdout) == (0, 2, 0)


def test_copy_only_the_given_ids_through_an_alias(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, default, media = two_storages
    contents = seed(default)
    chosen = sorted(contents)[:2]

    result = sa_depot(
        "-c", str(config), "copy", "default", "avatars", "--id", chosen[0], "--id", chosen[1]
    )

    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (2, 0, 0)
    assert_identical(default, media, {i: contents[i] for i in chosen})


def test_a_corrupt_source_file_fails_the_others_are_copied(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, default, media = two_storages
    contents = seed(default)
    corrupt = sorted(contents)[1]
    with default.get(corrupt) as stored:
        assert stored.local_path is not None
        Path(stored.local_path).write_bytes(b"bit rot")

    result = sa_depot("-c", str(config), "copy", "default", "media")

    assert_user_error(result, "1 file(s) could not be copied")
    assert summary(result.stdout) == (3, 0, 1)
    assert f"failed default/{corrupt}: " in result.stderr
    assert "does not match its checksum" in result.stderr
    del contents[corrupt]
    assert_identical(default, media, contents)  # and no corrupt copy of the bad file


def test_an_interrupted_copy_resumes_where_it_stopped(
    sa_depot: Invoker, two_storages: Storages, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, default, media = two_storages
    contents = seed(default, 5)
    write_copy = LocalFileStorage.write_copy
    written: list[str] = []

    def interrupted_after_two_files(
        self: LocalFileStorage, stored: StoredFile, **options: object
    ) -> FileInfo:
        if len(written) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third file
        written.append(stored.file_id)
        return write_copy(self, stored, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalFileStorage, "write_copy", interrupted_after_two_files)
    interrupted = sa_depot("-c", str(config), "copy", "default", "media")
    assert interrupted.exit_code != 0
    assert sorted(media.list()) == sorted(written)
    monkeypatch.setattr(LocalFileStorage, "write_copy", write_copy)

    resumed = sa_depot("-c", str(config), "copy", "default", "media")

    assert resumed.exit_code == 0, resumed.output
    assert summary(resumed.stdout) == (3, 2, 0)
    assert_identical(default, media, contents)


def test_an_unknown_storage_lists_the_configured_ones(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, _, _ = two_storages
    result = sa_depot("-c", str(config), "copy", "default", "nope")
    assert_user_error(result, "no storage named 'nope'", "'default'", "'media'")
    result = sa_depot("-c", str(config), "copy", "elsewhere", "media")
    assert_user_error(result, "no storage named 'elsewhere'")


def test_copying_a_storage_into_itself_is_refused(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, _, media = two_storages
    result = sa_depot("-c", str(config), "copy", "media", "avatars")
    assert_user_error(result, "'media' and 'avatars' are the same storage")


def test_a_wrong_id_blames_the_source_and_copies_nothing(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    """A typo in --id is the source's: the message names it, suggests 'sa-depot ls', and
    does not promise that running the command again helps."""
    config, default, media = two_storages
    present = default.create(b"kept")
    missing = "0b1c9d3e-5b8f-4a43-9a0e-2d6f1e7c8a90"
    result = sa_depot(
        "-c", str(config), "copy", "default", "media", "--id", present, "--id", missing
    )
    assert_user_error(result, f"--id '{missing}'", "source storage 'default' has no such file")
    assert "sa-depot ls default" in result.stderr
    assert "again" not in result.output

    result = sa_depot("-c", str(config), "copy", "default", "media", "--id", "nope")
    assert_user_error(
        result, "--id 'nope' is not a file id of the source storage 'default'", "expected a UUID"
    )
    assert "'media'" not in result.output  # the destination is not blamed
    assert media.list() == []


def test_dry_run_reports_what_would_be_copied_and_writes_nothing(
    sa_depot: Invoker, two_storages: Storages
) -> None:
    config, default, media = two_storages
    contents = seed(default)
    first = sorted(contents)[0]
    assert sa_depot("-c", str(config), "copy", "default", "media", "--id", first).exit_code == 0

    result = sa_depot("-c", str(config), "copy", "--dry-run", "default", "media")

    assert result.exit_code == 0, result.output
    assert re.search(r"would copy 3 file.*would skip 1 .*failed 0", result.stdout)
    assert media.list() == [first]
