"""``sa-depot promote`` through the real command: it promotes what the journal holds, retries
with back-off, leaves a poisoned file failed (listed by --list, exit status 1) and queues it
again with --retry-failed."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sa_depot import schema
from sa_depot.database import promotions as journal
from sa_depot.fields import lifecycle
from sa_depot.manager import DepotManager
from sa_depot.orm import promotions as dispatch
from tests.cli.test_real_command import sa_depot

APP = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile


class RefusePoison(FileFilter):
    def on_save(self, uploaded):
        with uploaded.file as stored:
            if stored.read(6) == b"poison":
                raise ValueError("poisoned content: this processor always raises")


class Base(DeclarativeBase):
    pass


class Photo(Base):
    __tablename__ = "TABLE"
    id: Mapped[int] = mapped_column(primary_key=True)
    image: Mapped[UploadedFile | None] = mapped_column(
        UploadedFileField(upload_storage="queue", promote_to="public", filters=[RefusePoison()])
    )
"""


class Ignoring:
    def submit(self, engine: sa.Engine, paths: object) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, str, ModuleType]]:
    table = f"photos_{uuid.uuid4().hex[:8]}"
    (tmp_path / "promo_app.py").write_text(APP.replace("TABLE", table))
    (tmp_path / "sa_depot.toml").write_text(
        "".join(
            f'[storages.{name}]\nstorage_path = "{tmp_path / name}"\n'
            for name in ("queue", "public")
        )
    )
    spec = importlib.util.spec_from_file_location(f"promo_app_{table}", tmp_path / "promo_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for name in ("queue", "public"):
        DepotManager.configure(name, {"depot.storage_path": str(tmp_path / name)})
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    engine = sa.create_engine(url)
    schema.metadata.create_all(engine)
    module.Base.metadata.create_all(engine)
    dispatch.set_executor(Ignoring())  # the command promotes, not this process
    with Session(engine) as session:
        session.add_all(
            [module.Photo(image=f"photo {n}".encode()) for n in range(3)]
            + [module.Photo(image=b"poison pill")]
        )
        session.commit()
    engine.dispose()
    yield tmp_path, url, module
    dispatch.set_executor(None)
    module.Base.registry.dispose()
    lifecycle.uninstall()
    del sys.modules[spec.name]


def images(url: str, module: ModuleType) -> list[object]:
    engine = sa.create_engine(url)
    with Session(engine) as session:
        found = [p.image for p in session.scalars(sa.select(module.Photo).order_by("id"))]
    engine.dispose()
    return found


def test_promote_runs_the_journal_and_leaves_the_poisoned_file_failed(
    project: tuple[Path, str, ModuleType],
) -> None:
    root, url, module = project
    base = ("--database-url", url, "--metadata", "promo_app:Base.metadata")
    listed = sa_depot("promote", "--list", "--database-url", url, cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert "queued: 4, failed: 0" in listed.stdout

    result = sa_depot("promote", *base, "--max-attempts", "3", "--backoff", "0.1", cwd=root)
    assert result.returncode == 1, result.stderr
    assert "promoted: 3" in result.stdout and "gave up: 1" in result.stdout
    assert "failed: 2" in result.stdout  # two attempts retried after their back-off
    assert "poisoned content" in result.stderr and "--retry-failed" in result.stderr
    found = images(url, module)
    assert [img.depot_name for img in found] == ["public"] * 3 + ["queue"]  # type: ignore[attr-defined]

    listed = sa_depot("promote", "--list", "--database-url", url, cwd=root)
    assert "queued: 0, failed: 1" in listed.stdout and "poisoned content" in listed.stdout

    engine = sa.create_engine(url)
    [row] = journal.listing(engine)
    assert (row.state, row.attempts) == ("failed", 3)
    retried = sa_depot("promote", *base, "--retry-failed", "--max-attempts", "1", cwd=root)
    assert retried.returncode == 1
    assert "queued again: 1 failed promotion(s)" in retried.stdout
    [row] = journal.listing(engine)
    assert (row.state, row.attempts) == ("failed", 1)
    engine.dispose()


def test_promote_without_models_says_what_to_pass(project: tuple[Path, str, ModuleType]) -> None:
    root, url, _ = project
    result = sa_depot("promote", "--database-url", url, cwd=root)
    assert result.returncode == 2
    assert "--metadata" in result.stderr
