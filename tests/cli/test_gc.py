"""``sa-depot gc`` on SQLite: journaled removals, orphans, the grace period, dry runs, and the
messages for what is missing."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot.io.interfaces import utcnow
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager
from sa_depot.schema import metadata as sa_depot_metadata
from sa_depot.schema import pending_removals
from tests.cli.conftest import Invoker, assert_user_error

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
"""


@dataclass
class App:
    config: Path
    url: str
    storage: LocalFileStorage
    models: ModuleType
    #: A file a committed row references.
    referenced: str
    #: A file no row references.
    orphan: str
    #: A file the journal lists (its row was deleted, the process died before removing it).
    journaled: str


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    package = tmp_path / "gcapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("gcapp", "gcapp.models"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    models = importlib.import_module("gcapp.models")

    config = tmp_path / "sa_depot.toml"
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    config.write_text(f'[storages.default]\nstorage_path = "{tmp_path / "files"}"\n')
    storage = DepotManager.configure("default", {"depot.storage_path": str(tmp_path / "files")})
    assert isinstance(storage, LocalFileStorage)
    engine = sa.create_engine(url)
    models.Base.metadata.create_all(engine)
    sa_depot_metadata.create_all(engine)
    with Session(engine) as session:
        document = models.Document(content=b"kept")
        session.add(document)
        session.commit()
        referenced = document.content.path
    orphan = f"default/{storage.create(b'nobody refers to me')}"
    journaled = f"default/{storage.create(b'my row was deleted')}"
    with engine.begin() as connection:
        connection.execute(
            pending_removals.insert().values(
                path=journaled, storage="default", scheduled_at=utcnow(), attempts=0
            )
        )
    engine.dispose()
    DepotManager.reset()
    yield App(config, url, storage, models, referenced, orphan, journaled)


def exists(app: App, path: str) -> bool:
    return app.storage.exists(path.split("/", 1)[1])


def gc(sa_depot: Invoker, app: App, *args: str) -> list[str]:
    result = sa_depot(
        "-c", str(app.config), "gc", "--database-url", app.url, "--metadata",
        "gcapp.models:Base.metadata", *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_dry_run_reports_and_removes_nothing(sa_depot: Invoker, app: App) -> None:
    lines = gc(sa_depot, app, "--grace", "0", "--dry-run")
    assert f"would remove {app.orphan} (unreferenced)" in lines
    assert f"would remove {app.journaled} (journaled removal)" in lines
    assert not any(app.referenced in line for line in lines)
    assert all(exists(app, path) for path in (app.referenced, app.orphan, app.journaled))


def test_dry_run_never_says_removed(sa_depot: Invoker, app: App) -> None:
    result = sa_depot(
        "-c", str(app.config), "gc", "--database-url", app.url, "--metadata",
        "gcapp.models:Base.metadata", "--grace", "0", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not re.search(r"\bremoved\b", result.output), result.output
    assert "journal: would remove 1" in result.stdout
    assert re.search(r"orphans older than the grace period \(0s\): would remove \d", result.stdout)
    assert "leftovers of interrupted writes: not looked for in a dry run" in result.stdout


def test_gc_refuses_a_missing_sqlite_file_and_creates_none(
    sa_depot: Invoker, app: App, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.sqlite"
    for extra in (["--dry-run"], ["--journal-only"], []):
        result = sa_depot(
            "-c", str(app.config), "gc", "--database-url", f"sqlite:///{typo}", "--metadata",
            "gcapp.models:Base.metadata", *extra,
        )  # fmt: skip
        assert_user_error(result, f"the SQLite file '{typo}' does not exist", "nothing was")
        assert "will sweep" not in result.output  # refused before anything else
    assert not typo.exists()
    assert exists(app, app.orphan)


def test_gc_removes_orphans_and_journaled_files(sa_depot: Invoker, app: App) -> None:
    lines = gc(sa_depot, app, "--grace", "0s")
    assert f"removed {app.orphan} (unreferenced)" in lines
    assert f"removed {app.journaled} (journaled removal)" in lines
    assert exists(app, app.referenced)
    assert not exists(app, app.orphan)
    assert not exists(app, app.journaled)
    # nothing left to do
    again = gc(sa_depot, app, "--grace", "0")
    assert not any(line.startswith("removed ") for line in again)


def test_the_grace_period_protects_young_files(sa_depot: Invoker, app: App) -> None:
    lines = gc(sa_depot, app)  # 24 hours by default: every file here is younger
    assert f"removed {app.journaled} (journaled removal)" in lines  # journaled: no grace
    assert exists(app, app.orphan)
    assert any("too young: 1" in line for line in lines)


def test_journal_only_needs_no_metadata(sa_depot: Invoker, app: App) -> None:
    result = sa_depot("-c", str(app.config), "gc", "--database-url", app.url, "--journal-only")
    assert result.exit_code == 0, result.output
    assert f"removed {app.journaled} (journaled removal)" in result.stdout
    assert exists(app, app.orphan)


def test_database_and_metadata_from_the_configuration(
    sa_depot: Invoker, app: App, tmp_path: Path
) -> None:
    config = tmp_path / "full.toml"
    config.write_text(
        app.config.read_text() + '\n[gc]\nmetadata = ["gcapp.models:Base.metadata"]\ngrace = "0s"\n'
    )
    result = sa_depot("-c", str(config), "gc", "-q", env={"SA_DEPOT_DATABASE_URL": app.url})
    assert result.exit_code == 0, result.output
    assert "orphans older than the grace period (0s): removed 1" in result.stdout
    assert not exists(app, app.orphan)


def test_gc_without_a_database(sa_depot: Invoker, app: App) -> None:
    result = sa_depot("-c", str(app.config), "gc", "--metadata", "gcapp.models:Base.metadata")
    assert_user_error(result, "no database", "--database-url", exit_code=2)


def test_gc_without_metadata(sa_depot: Invoker, app: App) -> None:
    result = sa_depot("-c", str(app.config), "gc", "--database-url", app.url)
    assert_user_error(result, "--metadata MODULE:ATTRIBUTE", exit_code=2)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gcapp.models", "is not of the form 'package.module:attribute'"),
        ("gcapp.nothing:Base", "cannot import 'gcapp.nothing'"),
        ("gcapp.models:Nope", "'Nope' not found"),
    ],
)
def test_gc_with_bad_metadata(sa_depot: Invoker, app: App, spec: str, message: str) -> None:
    result = sa_depot("-c", str(app.config), "gc", "--database-url", app.url, "--metadata", spec)
    assert_user_error(result, message)
    assert exists(app, app.orphan)


def test_gc_with_a_bad_grace(sa_depot: Invoker, app: App) -> None:
    result = sa_depot(
        "-c", str(app.config), "gc", "--database-url", app.url, "--journal-only",
        "--grace", "soon",
    )  # fmt: skip
    assert_user_error(result, "'soon' is not a duration", exit_code=2)


def test_gc_with_a_malformed_database_url(sa_depot: Invoker, app: App) -> None:
    url = "nonsense://user:hunter2@host/db"
    result = sa_depot("-c", str(app.config), "gc", "--database-url", url, "--journal-only")
    assert_user_error(result, "database URL 'nonsense://user:***@host/db'", "sqlite:///")
    assert "hunter2" not in result.output


def test_gc_with_an_unreachable_database(sa_depot: Invoker, app: App) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = sa_depot("-c", str(app.config), "gc", "--database-url", url, "--journal-only")
    assert_user_error(result, "database error", "127.0.0.1")


def test_gc_refuses_tables_missing_from_the_database(
    sa_depot: Invoker, app: App, tmp_path: Path
) -> None:
    (tmp_path / "empty.sqlite").touch()  # an empty SQLite database
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    result = sa_depot(
        "-c", str(app.config), "gc", "--database-url", empty, "--metadata",
        "gcapp.models:Base.metadata", "--grace", "0",
    )  # fmt: skip
    assert_user_error(result, "'documents'", "does not exist", "refuses to sweep")
    assert exists(app, app.orphan)


def test_gc_never_sweeps_a_backup_it_was_not_asked_to(
    sa_depot: Invoker, app: App, tmp_path: Path
) -> None:
    """docs/cli.md's set-up: the application writes to 'default', 'backup' is filled by
    ``sa-depot copy default backup``. No file column writes to 'backup', so gc leaves it
    alone (copies keep their source's age: the grace period would not protect them)."""
    config = tmp_path / "with_backup.toml"
    config.write_text(
        app.config.read_text() + f'\n[storages.backup]\nstorage_path = "{tmp_path / "backup"}"\n'
    )
    copied = sa_depot("-c", str(config), "copy", "default", "backup", "-q")
    assert copied.exit_code == 0, copied.output
    backup = LocalFileStorage(str(tmp_path / "backup"))
    before = set(backup.list())
    assert len(before) == 3

    result = sa_depot(
        "-c", str(config), "gc", "--database-url", app.url, "--metadata",
        "gcapp.models:Base.metadata", "--grace", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not any("backup/" in line for line in result.stdout.splitlines())
    assert "will sweep default (written by file columns)" in result.stderr
    assert "will not sweep backup: no file column writes to it" in result.stderr
    assert "transactions that have not committed yet" in result.stderr  # --grace 0 warns
    assert set(backup.list()) == before
    assert not exists(app, app.orphan)  # the application's own storage was swept

    # Named explicitly, it is swept: every file there is unreferenced by this database.
    named = sa_depot(
        "-c", str(config), "gc", "--database-url", app.url, "--metadata",
        "gcapp.models:Base.metadata", "--grace", "0", "--storage", "backup", "--dry-run",
    )  # fmt: skip
    assert named.exit_code == 0, named.output
    assert "will sweep backup (named by --storage)" in named.stderr
    assert sum("(unreferenced)" in line for line in named.stdout.splitlines()) == 3
    assert set(backup.list()) == before


def test_a_long_grace_gives_no_warning(sa_depot: Invoker, app: App) -> None:
    result = sa_depot(
        "-c", str(app.config), "gc", "--database-url", app.url, "--metadata",
        "gcapp.models:Base.metadata", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
