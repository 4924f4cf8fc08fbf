"""``sa-depot adopt`` through the real command: it registers the files of a table filedepot
wrote, reports bad data with table, primary key and reason, deletes nothing, and resumes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import sqlalchemy as sa

from sa_depot.schema import attachments, files
from tests.cli.test_real_command import sa_depot

FILEDEPOT_APP = Path(__file__).resolve().parents[1] / "filedepot" / "application"


def filedepot_project(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the database and files filedepot 0.12.0 wrote, the application's models with
    renamed imports (``app:Base``), and a configuration naming its storages."""
    shutil.copytree(FILEDEPOT_APP / "fixture", tmp_path, dirs_exist_ok=True)
    source = (FILEDEPOT_APP / "app.py").read_text()
    (tmp_path / "app.py").write_text(
        re.sub(r"^(from|import) depot\b", r"\1 sa_depot", source, flags=re.MULTILINE)
    )
    (tmp_path / "sa_depot.toml").write_text(
        f'[storages.default]\nstorage_path = "{tmp_path / "files" / "default"}"\n'
        f'[storages.avatars_v1]\nstorage_path = "{tmp_path / "files" / "avatars_v1"}"\n'
    )
    return tmp_path, f"sqlite:///{tmp_path / 'app.sqlite'}"


def registered(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(files)).scalar()
            uses = conn.execute(sa.select(sa.func.count()).select_from(attachments)).scalar()
        return int(count or 0), int(uses or 0)
    finally:
        engine.dispose()


def stored_files(root: Path) -> set[Path]:
    return {p for p in (root / "files").rglob("*") if p.is_file()}


def test_adopt_registers_a_table_filedepot_wrote(tmp_path: Path) -> None:
    project, url = filedepot_project(tmp_path)
    before = stored_files(project)
    adopt = ("adopt", "--database-url", url, "--metadata", "app:Base.metadata")
    result = sa_depot(*adopt, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "document.content: read" in result.stdout
    assert "0 problem(s)" in result.stdout
    paths, uses = registered(url)
    assert paths > 0 and uses >= paths  # thumbnails are files of their own
    assert stored_files(project) == before  # nothing deleted, nothing created in storages

    again = sa_depot(*adopt, cwd=project)  # a finished adoption skips the columns
    assert again.returncode == 0, again.stderr
    assert "adopted already" in again.stdout
    restarted = sa_depot(*adopt, "--restart", cwd=project)  # idempotent when read again
    assert restarted.returncode == 0, restarted.stderr
    assert registered(url) == (paths, uses)


def test_adopt_reports_bad_values_and_deletes_nothing(tmp_path: Path) -> None:
    project, url = filedepot_project(tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO document (uid, name, content) VALUES (:uid, :name, :content)"),
            [
                {"uid": 901, "name": "not json", "content": "{this is not json"},
                {"uid": 902, "name": "gone storage", "content": json.dumps({"path": "old/x1"})},
                {
                    "uid": 903,
                    "name": "missing file",
                    "content": json.dumps({"path": "default/6f1c1e5a-1b2c-4d3e-8f90-a1b2c3d4e5f6"}),
                },
            ],
        )
    engine.dispose()
    before = stored_files(project)
    result = sa_depot(
        "adopt", "--database-url", url, "--metadata", "app:Base.metadata", "-q", cwd=project
    )
    assert result.returncode == 1
    errors = result.stderr
    assert "not adopted: document.content, row uid=901: holds malformed JSON" in errors
    assert "row uid=902: old/x1: storage 'old' is not configured" in errors
    assert "row uid=903: default/6f1c1e5a-1b2c-4d3e-8f90-a1b2c3d4e5f6: the file does not" in errors
    assert "3 value(s) could not be registered" in errors
    assert stored_files(project) == before
    assert registered(url)[0] > 0  # the good rows were adopted all the same


def test_adopt_needs_a_database_and_tables(tmp_path: Path) -> None:
    project, url = filedepot_project(tmp_path)
    missing = sa_depot("adopt", "--metadata", "app:Base.metadata", cwd=project)
    assert missing.returncode == 2 and "no database" in missing.stderr
    typo = sa_depot(
        "adopt", "--database-url", "sqlite:///typo.sqlite", "--metadata", "app:Base.metadata",
        cwd=project,
    )  # fmt: skip
    assert typo.returncode == 1 and "does not exist" in typo.stderr
    assert not (project / "typo.sqlite").exists()


def test_adopt_help_names_what_it_does(tmp_path: Path) -> None:
    result = sa_depot("adopt", "-h", cwd=tmp_path)
    assert result.returncode == 0
    assert "deletes and changes nothing" in " ".join(result.stdout.split())
