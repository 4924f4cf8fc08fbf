"""Autogenerate: a model with an UploadedFileField (with filters and upload_storage) produces a
migration that imports what it uses, creates the right column on each database, downgrades,
and leaves nothing for the next autogenerate to find.

Each test builds an application's Alembic environment in a temporary directory (``alembic
init``, then the env.py a user would write with sa_depot's hooks) and a models module.
"""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

import sa_depot.alembic
from sa_depot.database import journal
from sa_depot.manager import DepotManager
from sa_depot.schema import pending_removals
from tests.alembic.conftest import png, sha256, unique

ENV_PY = """
import importlib

from alembic import context

import sa_depot.alembic
import sa_depot.schema

config = context.config
models = importlib.import_module(config.attributes["models_module"])

if config.attributes["with_sa_depot_tables"]:
    # sa_depot's tables are part of this application's migrations
    target_metadata = [models.Base.metadata, sa_depot.schema.metadata]
    include_name = None
else:
    # sa_depot's own migrations manage its tables: keep them out of ours
    target_metadata = models.Base.metadata
    include_name = sa_depot.alembic.include_name

if config.attributes["upgrade_sa_depot_first"]:
    # sa_depot's own migrations, in the same run, connection and transaction
    sa_depot.alembic.upgrade(config.attributes["connection"])

context.configure(
    connection=config.attributes["connection"],
    target_metadata=target_metadata,
    version_table=config.attributes["version_table"],
    render_item=sa_depot.alembic.render_item,
    include_name=include_name,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
"""

MODELS_PY = """
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sa_depot.fields.filters.thumbnails import WithThumbnailFilter
from sa_depot.fields.sqlalchemy import UploadedFileField, UploadedFileListField
from sa_depot.fields.upload import UploadedFile


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = {table!r}
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    photo: Mapped[UploadedFile | None] = mapped_column(
        UploadedFileField(filters=[WithThumbnailFilter((16, 16), "PNG")], upload_storage="media")
    )
    attachment: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())
    gallery: Mapped[list[UploadedFile]] = mapped_column(UploadedFileListField())
"""


@dataclass
class AppEnvironment:
    """An application's Alembic environment, on one database."""

    directory: Path
    config: Config
    table: str

    @property
    def versions(self) -> Path:
        return self.directory / "migrations" / "versions"

    def revision(self, message: str) -> str:
        """Autogenerate a revision; return the migration file's text."""
        script = command.revision(self.config, message=message, autogenerate=True)
        assert script is not None and not isinstance(script, list)
        return Path(script.path).read_text()


@pytest.fixture
def app_environment(
    tmp_path: Path, engine: sa.Engine, request: pytest.FixtureRequest
) -> Iterator[AppEnvironment]:
    mode = getattr(request, "param", "")
    table = unique("documents")
    module = unique("app_models")
    (tmp_path / f"{module}.py").write_text(MODELS_PY.format(table=table))
    sys.path.insert(0, str(tmp_path))
    # `alembic init`: the generic template and alembic.ini, as users have them
    command.init(
        Config(tmp_path / "alembic.ini", stdout=io.StringIO()), str(tmp_path / "migrations")
    )
    (tmp_path / "migrations" / "env.py").write_text(textwrap.dedent(ENV_PY))
    config = Config(tmp_path / "alembic.ini", stdout=io.StringIO())
    config.attributes.update(
        models_module=module,
        with_sa_depot_tables=mode == "with_sa_depot_tables",
        upgrade_sa_depot_first=mode == "upgrade_sa_depot_first",
        version_table=unique("app_version"),
    )
    DepotManager.configure("media", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"})
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            yield AppEnvironment(tmp_path, config, table)
            connection.rollback()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)


def run(environment: AppEnvironment, operation: str, revision: str) -> None:
    """Run an Alembic command on the environment's connection and commit."""
    getattr(command, operation)(environment.config, revision)
    environment.config.attributes["connection"].commit()


def native_json(engine: sa.Engine, table: str, column: str) -> bool:
    """Whether the database stores ``table.column`` as JSON it validates."""
    if engine.dialect.name == "postgresql":
        types = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}
        return type(types[column]).__name__ == "JSONB"
    if engine.dialect.name == "mysql":  # MariaDB: LONGTEXT with a json_valid() check
        with engine.connect() as connection:
            ddl = connection.execute(sa.text(f"SHOW CREATE TABLE {table}")).one()[1]
        return f"json_valid(`{column}`)" in ddl
    return False


def test_autogenerated_migration_imports_and_renders_the_field(
    app_environment: AppEnvironment, engine: sa.Engine
) -> None:
    text = app_environment.revision("add documents")

    assert "import sa_depot.fields.sqlalchemy" in text
    assert "sa_depot.fields.sqlalchemy.UploadedFileField(upload_storage='media')" in text
    assert "sa_depot.fields.sqlalchemy.UploadedFileField()" in text
    assert "sa_depot.fields.sqlalchemy.UploadedFileListField()" in text
    assert "WithThumbnailFilter" not in text  # behaviour, not schema: see render_item
    assert "sa_depot_pending_removals" not in text  # left to sa_depot's own migrations
    compile(text, "migration.py", "exec")

    run(app_environment, "upgrade", "head")

    table = app_environment.table
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns(table)}
    assert {"id", "title", "photo", "attachment"} <= set(columns)
    assert columns["photo"]["nullable"]
    if engine.dialect.name == "sqlite":
        assert isinstance(columns["photo"]["type"], sa.Text)
    else:
        assert native_json(engine, table, "photo")
        assert native_json(engine, table, "attachment")
    # Nothing left for the next autogenerate: the types compare equal to the model's.
    command.check(app_environment.config)


def test_the_migrated_table_stores_files_through_the_model(
    app_environment: AppEnvironment, engine: sa.Engine
) -> None:
    app_environment.revision("add documents")
    run(app_environment, "upgrade", "head")
    models = sys.modules[str(app_environment.config.attributes["models_module"])]
    image = png(3)

    with Session(engine) as session:
        session.add(models.Document(id=1, title="one", photo=image))
        session.commit()
    with Session(engine) as session:
        document = session.get(models.Document, 1)
        assert document is not None and document.photo is not None
        assert document.photo.depot_name == "media"
        assert document.photo.checksum == sha256(image)
        with document.photo.file as stored:
            assert stored.read() == image
        thumbnail = document.photo["thumb_16x16_path"]
        assert thumbnail in document.photo.files
        with DepotManager.get_file(thumbnail) as stored:
            assert stored.read(8) == b"\x89PNG\r\n\x1a\n"


def test_downgrade_drops_what_the_migration_created(
    app_environment: AppEnvironment, engine: sa.Engine
) -> None:
    app_environment.revision("add documents")
    run(app_environment, "upgrade", "head")
    assert app_environment.table in sa.inspect(engine).get_table_names()

    run(app_environment, "downgrade", "base")

    assert app_environment.table not in sa.inspect(engine).get_table_names()
    models = sys.modules[str(app_environment.config.attributes["models_module"])]
    with engine.connect() as connection:  # the model is ahead of the database again
        context = MigrationContext.configure(
            connection, opts={"version_table": app_environment.config.attributes["version_table"]}
        )
        changes = compare_metadata(context, models.Base.metadata)
    assert [(c[0], c[1].name) for c in changes] == [("add_table", app_environment.table)]


def test_a_column_added_later_is_rendered_in_add_column(
    app_environment: AppEnvironment, engine: sa.Engine
) -> None:
    """The other common shape of migration: an UploadedFileField added to an existing table."""
    models_file = app_environment.directory / (
        str(app_environment.config.attributes["models_module"]) + ".py"
    )
    source = models_file.read_text()
    models_file.write_text(source.replace("    attachment:", "    # attachment:"))
    sys.modules.pop(str(app_environment.config.attributes["models_module"]), None)
    app_environment.revision("documents")
    run(app_environment, "upgrade", "head")
    assert "attachment" not in {
        c["name"] for c in sa.inspect(engine).get_columns(app_environment.table)
    }

    models_file.write_text(source)
    sys.modules.pop(str(app_environment.config.attributes["models_module"]), None)
    text = app_environment.revision("add attachment")

    assert "op.add_column" in text
    assert "sa_depot.fields.sqlalchemy.UploadedFileField()" in text
    assert "import sa_depot.fields.sqlalchemy" in text
    run(app_environment, "upgrade", "head")
    if engine.dialect.name != "sqlite":
        assert native_json(engine, app_environment.table, "attachment")
    command.check(app_environment.config)
    run(app_environment, "downgrade", "-1")
    assert "attachment" not in {
        c["name"] for c in sa.inspect(engine).get_columns(app_environment.table)
    }


@pytest.mark.parametrize("app_environment", ["with_sa_depot_tables"], indirect=True)
def test_sa_depot_tables_in_the_applications_metadata_are_autogenerated(
    app_environment: AppEnvironment, engine: sa.Engine
) -> None:
    text = app_environment.revision("add documents and sa_depot's journal")

    assert "sa_depot_pending_removals" in text and "sa_depot_files" in text
    run(app_environment, "upgrade", "head")
    with engine.begin() as connection:
        journal.record_removals(connection, ["media/0b8e7c9e-8f1e-4a43-9d6c-2f3f5b8e9a01"])
    assert [p.path for p in journal.pending(engine)] == [
        "media/0b8e7c9e-8f1e-4a43-9d6c-2f3f5b8e9a01"
    ]
    assert sa_depot.alembic.current(engine) is None  # sa_depot's own migrations were not used
    command.check(app_environment.config)

    run(app_environment, "downgrade", "base")
    names = sa.inspect(engine).get_table_names()
    assert pending_removals.name not in names and app_environment.table not in names


@pytest.mark.parametrize("app_environment", ["upgrade_sa_depot_first"], indirect=True)
def test_the_applications_env_py_can_run_sa_depots_migrations_first(
    app_environment: AppEnvironment, engine: sa.Engine
) -> None:
    """sa_depot.alembic.upgrade(connection) inside the application's env.py: a nested Alembic
    run that must leave the application's own run working."""
    text = app_environment.revision("add documents")
    run(app_environment, "upgrade", "head")

    assert "sa_depot_pending_removals" not in text
    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()
    names = sa.inspect(engine).get_table_names()
    assert {app_environment.table, pending_removals.name} <= set(names)
    command.check(app_environment.config)
    run(app_environment, "downgrade", "base")
    assert app_environment.table not in sa.inspect(engine).get_table_names()
