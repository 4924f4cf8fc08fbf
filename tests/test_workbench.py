"""sa_depot.workbench: a private scratch directory removed whatever happens, and local paths
for stored files (the stored file itself on local disk, a streamed copy elsewhere)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sa_depot.io.local import LocalFileStorage
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.workbench import Workbench, current, localized_file


def test_the_directory_is_private_and_removed_after_the_block(tmp_path: Path) -> None:
    with Workbench(tmp_path) as bench:
        directory = bench.directory
        assert directory.parent == tmp_path and directory.is_dir()
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        bench.path("out.png").write_bytes(b"x")
        assert current() is bench
    assert not directory.exists()
    assert current() is None


def test_the_directory_is_removed_when_processing_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="processor failed"), Workbench(tmp_path) as bench:
        directory = bench.directory
        (directory / "partial").write_bytes(b"half")
        raise RuntimeError("processor failed")
    assert not directory.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="not open"):
        bench.directory  # noqa: B018


def test_a_local_storage_gives_the_stored_file_itself(tmp_path: Path) -> None:
    storage = LocalFileStorage(str(tmp_path / "files"))
    file_id = storage.create(b"content", "a.txt")
    with Workbench(tmp_path) as bench:
        local = bench.localized_file(storage, file_id)
        assert local.read_bytes() == b"content"
        assert not local.is_relative_to(bench.directory)  # no copy made
        assert list(bench.directory.iterdir()) == []


def test_a_remote_storage_gives_a_streamed_copy_removed_with_the_workbench(
    tmp_path: Path,
) -> None:
    storage = MemoryFileStorage()
    data = os.urandom(3 * 1024 * 1024 + 17)
    file_id = storage.create(data, "big.bin")
    with Workbench(tmp_path) as bench:
        local = localized_file(storage, file_id)  # the current workbench's
        assert local.parent == bench.directory and local.read_bytes() == data
    assert not local.exists()


def test_localized_file_outside_a_workbench_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="needs a workbench"):
        localized_file(MemoryFileStorage(), "x")


def test_file_names_stay_inside_the_workbench(tmp_path: Path) -> None:
    with Workbench(tmp_path) as bench:
        for name in ("../escape", "a/b", "..", ""):
            with pytest.raises(ValueError, match="plain name"):
                bench.path(name)
