"""The ``sa-depot`` console script as a user runs it: its own process, its exit status, and
what it writes on standard output (results, JSON) and on standard error (messages)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from sa_depot.demo import make_app
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager

SA_DEPOT = Path(sys.executable).parent / "sa-depot"
COMMANDS = ("demo", "ls", "stat", "copy", "gc", "adopt", "promote", "serve")


def sa_depot(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SA_DEPOT_")}
    return subprocess.run(
        [str(SA_DEPOT), *args],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def files_under(path: Path) -> set[Path]:
    return set(path.rglob("*"))


def test_reading_commands_create_nothing(tmp_path: Path) -> None:
    config = tmp_path / "sa_depot.toml"
    config.write_text(f'[storages.default]\nstorage_path = "{tmp_path / "typo"}"\n')
    before = files_under(tmp_path)

    listed = sa_depot("ls", "default", cwd=tmp_path)
    assert listed.returncode == 1
    assert listed.stdout == ""
    assert listed.stderr.startswith("Error: storage 'default' at ")
    assert "the storage directory does not exist" in listed.stderr

    collected = sa_depot(
        "gc", "--database-url", "sqlite:///typo.sqlite", "--metadata",
        "sa_depot.demo.models:Base.metadata", "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert collected.returncode == 1
    assert collected.stdout == ""
    assert f"the SQLite file '{tmp_path / 'typo.sqlite'}' does not exist" in collected.stderr

    assert files_under(tmp_path) == before


def test_an_empty_listing_says_so_on_standard_error(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    env = {"SA_DEPOT_STORAGE__DEFAULT__STORAGE_PATH": str(tmp_path / "files")}
    result = sa_depot("ls", "default", cwd=tmp_path, env=env)
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == "storage 'default' holds no files\n"


def test_stat_json_verify_of_a_corrupt_file(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "files")
    file_id = storage.create(b"A" * 64)
    with storage.get(file_id) as stored:
        Path(str(stored.local_path)).write_bytes(b"B" * 64)
    env = {"SA_DEPOT_STORAGE__DEFAULT__STORAGE_PATH": str(tmp_path / "files")}

    result = sa_depot("stat", "--json", "--verify", f"default/{file_id}", cwd=tmp_path, env=env)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert (data["file_id"], data["verified"]) == (file_id, False)
    assert "is corrupt" in data["error"]
    assert result.stderr.startswith("Error: ") and "is corrupt" in result.stderr

    missing = sa_depot("stat", "--json", "default/nope", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "invalid file id 'nope'" in json.loads(missing.stdout)["error"]


def test_stat_of_a_url_path_copied_from_the_browser(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "files")
    file_id = storage.create(b"hello", filename="hello.txt")
    env = {"SA_DEPOT_STORAGE__DEMO__STORAGE_PATH": str(tmp_path / "files")}
    result = sa_depot("stat", f"/depot/demo/{file_id}/hello.txt", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"path:          demo/{file_id}" in result.stdout
    assert "filename:      hello.txt" in result.stdout


def test_copy_of_a_mistyped_id_blames_the_source(tmp_path: Path) -> None:
    env = {
        "SA_DEPOT_STORAGE__DEFAULT__STORAGE_PATH": str(tmp_path / "files"),
        "SA_DEPOT_STORAGE__BACKUP__STORAGE_PATH": str(tmp_path / "backup"),
    }
    LocalFileStorage(tmp_path / "files")
    result = sa_depot("copy", "default", "backup", "--id", "nope", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "--id 'nope' is not a file id of the source storage 'default'" in result.stderr
    assert "again" not in result.stderr
    assert not (tmp_path / "backup").exists()


def test_gc_of_the_demo_application(tmp_path: Path) -> None:
    """The collector pointed at the demo's own models, as docs/cli.md shows."""
    demo = make_app(tmp_path / "demo")
    with Session(demo.engine) as session:
        row = demo.models.attachment(name="kept.txt", document=b"kept")
        session.add(row)
        session.commit()
        kept = row.document.path
    orphan = f"demo/{demo.storage.create(b'nobody refers to me')}"
    demo.engine.dispose()
    DepotManager.reset()
    env = {"SA_DEPOT_STORAGE__DEMO__STORAGE_PATH": str(tmp_path / "demo" / "files")}
    args = [
        "gc", "--database-url", "sqlite:///demo/demo.sqlite", "--metadata",
        "sa_depot.demo.models:Base.metadata", "--grace", "0",
    ]  # fmt: skip

    dry = sa_depot(*args, "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {orphan} (unreferenced)" in dry.stdout.splitlines()
    assert kept not in dry.stdout
    assert "will sweep demo (written by file columns)" in dry.stderr
    assert not re.search(r"\bremoved\b", dry.stdout + dry.stderr)

    done = sa_depot(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert f"removed {orphan} (unreferenced)" in done.stdout.splitlines()
    storage = LocalFileStorage(tmp_path / "demo" / "files")
    assert storage.list() == [kept.split("/", 1)[1]]


def test_the_command_list_gives_a_whole_sentence_per_command(tmp_path: Path) -> None:
    result = sa_depot("--help", cwd=tmp_path)
    assert result.returncode == 0
    listing = result.stdout.split("Commands:\n", 1)[1]
    entries = re.findall(r"^  (\w+) +(.+?)(?=^  \w|\Z)", listing, re.MULTILINE | re.DOTALL)
    assert [name for name, _ in entries] == sorted(COMMANDS)
    for name, text in entries:
        sentence = " ".join(text.split())
        assert sentence.endswith(".") and not sentence.endswith(("...", "e.g.")), (name, sentence)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_texts_are_plain_and_complete(command: str, tmp_path: Path) -> None:
    result = sa_depot(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for markup in ("``", ":class:", ":meth:", "\b", "[["):
        assert markup not in text, (command, markup)
    description = text.split("Options:", 1)[0]
    assert description.rstrip().endswith((".", ")")) or "\n  sa-depot " in description
    for line in text.splitlines():  # no word broken at a hyphen by the wrapping ("Per-")
        assert not re.search(r"\w-$", line), line
