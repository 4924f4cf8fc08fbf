"""Autogenerate in an environment made by plain ``alembic init``: the real ``alembic`` command
line, an ``env.py`` and a ``script.py.mako`` untouched except ``target_metadata``, on SQLite,
PostgreSQL and MariaDB.

sa_depot's Alembic plugin (the ``alembic.plugins`` entry point) must make the revisions import
what they render: without it, ``alembic upgrade`` fails with ``NameError: name 'sa_depot' is
not defined``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.alembic.conftest import unique

MODELS_PY = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.specialized.image import UploadedImageWithThumb


class AvatarField(UploadedFileField):
    '''A subclass of the application's own: Alembic renders it with this module's path.'''

    cache_ok = True

    def __init__(self, upload_storage: str = "avatars") -> None:
        super().__init__(upload_type=UploadedImageWithThumb, upload_storage=upload_storage)


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = {table!r}
    id: Mapped[int] = mapped_column(primary_key=True)
    content = mapped_column(UploadedFileField())
    avatar = mapped_column(AvatarField())
    # attachment = mapped_column(UploadedFileField(upload_storage="media"))
"""


def alembic(project: Path, *args: str) -> str:
    """Run ``alembic <args>`` in ``project`` as a user would; return its output."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"alembic {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def revision_text(project: Path, message: str) -> str:
    output = alembic(project, "revision", "--autogenerate", "-m", message)
    [path] = [
        line.split("Generating ", 1)[1].split(" ...")[0]
        for line in output.splitlines()
        if "Generating " in line
    ]
    return Path(path).read_text()


@pytest.fixture
def project(tmp_path: Path, engine: sa.Engine) -> tuple[Path, str]:
    """``alembic init migrations``, then only what its comments ask for: the database URL in
    alembic.ini and ``target_metadata`` in env.py."""
    table = unique("documents")
    module = unique("app_models")
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(MODELS_PY.format(table=table)))
    alembic(tmp_path, "init", "migrations")
    ini = tmp_path / "alembic.ini"
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini.write_text(
        "\n".join(
            f"sqlalchemy.url = {url}" if line.startswith("sqlalchemy.url") else line
            for line in ini.read_text().splitlines()
        )
    )
    env = tmp_path / "migrations" / "env.py"
    source = env.read_text()
    assert "target_metadata = None\n" in source
    env.write_text(
        source.replace(
            "target_metadata = None\n",
            f"from {module} import Base\ntarget_metadata = Base.metadata\n",
        )
    )
    return tmp_path, table


def test_a_stock_environment_autogenerates_revisions_that_run(
    project: tuple[Path, str], engine: sa.Engine
) -> None:
    directory, table = project
    created = revision_text(directory, "documents")

    assert "import sa_depot.fields.sqlalchemy\n" in created
    assert "sa_depot.fields.sqlalchemy.UploadedFileField()" in created
    models = next(directory.glob("app_models_*.py")).stem
    assert f"import {models}\n" in created  # the application's subclass, by its module
    assert f"{models}.AvatarField(upload_storage='avatars')" in created

    alembic(directory, "upgrade", "head")
    assert {"content", "avatar"} <= {c["name"] for c in sa.inspect(engine).get_columns(table)}
    assert "No new upgrade operations detected" in alembic(directory, "check")

    # a column added later: op.add_column renders the type too
    models_file = next(directory.glob("app_models_*.py"))
    models_file.write_text(models_file.read_text().replace("    # attachment", "    attachment"))
    added = revision_text(directory, "attachment")
    assert "op.add_column" in added
    assert "sa_depot.fields.sqlalchemy.UploadedFileField(upload_storage='media')" in added
    assert "import sa_depot.fields.sqlalchemy\n" in added
    assert f"import {models}\n" not in added  # only what this revision renders

    alembic(directory, "upgrade", "head")
    assert "attachment" in {c["name"] for c in sa.inspect(engine).get_columns(table)}
    alembic(directory, "downgrade", "-1")
    assert "attachment" not in {c["name"] for c in sa.inspect(engine).get_columns(table)}
    alembic(directory, "downgrade", "base")
    assert table not in sa.inspect(engine).get_table_names()
