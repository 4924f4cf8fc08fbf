"""sa_depot's own migrations: upgrade and downgrade on every database, the schema they make is
the one sa_depot.schema declares, their version table keeps out of the application's way, and
an installed wheel finds them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import sa_depot.alembic
from sa_depot.database import journal, promotions, provision, registry
from sa_depot.exceptions import ConfigurationError
from sa_depot.io.interfaces import utcnow
from sa_depot.schema import metadata, pending_removals

ROOT = Path(__file__).resolve().parents[2]


def differences(connection: sa.Connection) -> list[object]:
    """What autogenerate finds between sa_depot.schema and the database (sa_depot's tables)."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "version_table": sa_depot.alembic.VERSION_TABLE,
            "include_name": lambda name, type_, parents: (
                type_ != "table" or name in sa_depot.alembic.TABLES
            ),
        },
    )
    return list(compare_metadata(context, metadata))


def test_upgrade_creates_the_journal_as_declared_and_downgrade_drops_it(
    engine: sa.Engine,
) -> None:
    assert sa_depot.alembic.current(engine) is None

    sa_depot.alembic.upgrade(engine)

    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()
    inspector = sa.inspect(engine)
    assert {pending_removals.name, sa_depot.alembic.VERSION_TABLE} <= set(
        inspector.get_table_names()
    )
    assert "alembic_version" not in inspector.get_table_names()
    with engine.connect() as connection:
        assert differences(connection) == []
        journal.record_removals(connection, ["old/5f0c6c8e-5c1e-4c57-9d4b-3b0f8e4a9d10"])
        connection.commit()
    assert [p.path for p in journal.pending(engine)] == ["old/5f0c6c8e-5c1e-4c57-9d4b-3b0f8e4a9d10"]

    sa_depot.alembic.downgrade(engine, "base")

    assert pending_removals.name not in sa.inspect(engine).get_table_names()
    assert sa_depot.alembic.current(engine) is None
    sa_depot.alembic.upgrade(engine)  # and back up again
    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()


def test_the_registry_revision_upgrades_and_downgrades_a_database_with_data(
    engine: sa.Engine,
) -> None:
    """From the journal-only schema (sa_depot_0001), with journal rows in it, to the file
    registry and back: the journal rows survive both ways."""
    sa_depot.alembic.upgrade(engine, "sa_depot_0001")
    kept = "old/1c7b2a3e-5d6f-4a8b-9c0d-1e2f3a4b5c6d"
    with engine.begin() as connection:
        connection.execute(
            pending_removals.insert().values(
                path=kept, storage="old", scheduled_at=utcnow(), attempts=0
            )
        )
    assert "sa_depot_files" not in sa.inspect(engine).get_table_names()

    sa_depot.alembic.upgrade(engine, "sa_depot_0002")
    assert sa_depot.alembic.current(engine) == "sa_depot_0002"
    with engine.connect() as connection:  # all but the promotion journal of sa_depot_0003
        assert [d for d in differences(connection) if "sa_depot_promotions" not in str(d)] == []
    assert [p.path for p in journal.pending(engine)] == [kept]
    ref = registry.RowRef("documents", "content", registry.row_key([1]))
    with engine.begin() as connection:
        registry.register_new(connection, ref, ["old/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"])
    with engine.connect() as connection:
        assert registry.users_of(connection, ["old/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"])

    sa_depot.alembic.downgrade(engine, "sa_depot_0001")
    names = set(sa.inspect(engine).get_table_names())
    assert not names & {"sa_depot_files", "sa_depot_attachments", "sa_depot_adoptions"}
    assert [p.path for p in journal.pending(engine)] == [kept]
    sa_depot.alembic.downgrade(engine, "base")


def test_the_registry_revision_accepts_tables_the_lifecycle_created(engine: sa.Engine) -> None:
    """An application upgraded sa_depot, and its lifecycle created the new tables before
    anybody ran the migration: the migration then upgrades without complaint."""
    sa_depot.alembic.upgrade(engine, "sa_depot_0001")
    provision.forget()
    with engine.begin() as connection:
        provision.ensure_schema(connection)
    assert "sa_depot_files" in sa.inspect(engine).get_table_names()
    sa_depot.alembic.upgrade(engine)
    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()
    with engine.connect() as connection:
        assert differences(connection) == []
    sa_depot.alembic.downgrade(engine, "base")


def test_the_promotion_revision_upgrades_and_downgrades_a_database_with_data(
    engine: sa.Engine,
) -> None:
    """From the registry schema (sa_depot_0002), with registry rows, to the promotion journal
    and back: the registry survives both ways, and the journal works in between."""
    sa_depot.alembic.upgrade(engine, "sa_depot_0002")
    path = "queue/0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
    ref = registry.RowRef("photos", "image", registry.row_key([1]))
    with engine.begin() as connection:
        registry.register_new(connection, ref, [path])
    assert "sa_depot_promotions" not in sa.inspect(engine).get_table_names()

    sa_depot.alembic.upgrade(engine)
    assert sa_depot.alembic.current(engine) == "sa_depot_0003" == sa_depot.alembic.head()
    with engine.connect() as connection:
        assert differences(connection) == []
    with engine.begin() as connection:
        promotions.enqueue(connection, ref, [(path, "public")])
        promotions.take_enqueued(connection)
    assert [(p.path, p.target, p.state) for p in promotions.listing(engine)] == [
        (path, "public", "queued")
    ]

    sa_depot.alembic.downgrade(engine, "sa_depot_0002")
    assert "sa_depot_promotions" not in sa.inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert registry.users_of(connection, [path]) == {path}
    sa_depot.alembic.downgrade(engine, "base")


def test_the_promotion_revision_accepts_a_table_the_lifecycle_created(
    engine: sa.Engine,
) -> None:
    sa_depot.alembic.upgrade(engine, "sa_depot_0002")
    provision.forget()
    with engine.begin() as connection:
        provision.ensure_schema(connection)
    assert "sa_depot_promotions" in sa.inspect(engine).get_table_names()
    sa_depot.alembic.upgrade(engine)
    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()
    with engine.connect() as connection:
        assert differences(connection) == []
    sa_depot.alembic.downgrade(engine, "base")


def test_upgrade_twice_does_nothing_the_second_time(engine: sa.Engine) -> None:
    sa_depot.alembic.upgrade(engine)
    with engine.begin() as connection:
        journal.record_removals(connection, ["old/8e6f2a57-3a51-4bb2-a0b9-6b1f3cfa0a11"])
    sa_depot.alembic.upgrade(engine)
    assert len(journal.pending(engine)) == 1


def test_upgrade_accepts_a_connection_in_the_callers_transaction(engine: sa.Engine) -> None:
    if engine.dialect.name == "postgresql":  # transactional DDL: the caller can roll it back
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))  # the caller's transaction is open
            sa_depot.alembic.upgrade(connection)
            assert sa_depot.alembic.current(connection) == sa_depot.alembic.head()
            connection.rollback()
        assert sa_depot.alembic.current(engine) is None
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        sa_depot.alembic.upgrade(connection)
        connection.commit()
    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()


def test_upgrade_accepts_a_url(db_url: str, engine: sa.Engine) -> None:
    sa_depot.alembic.upgrade(db_url)
    assert sa_depot.alembic.current(db_url) == sa_depot.alembic.head()
    sa_depot.alembic.downgrade(db_url, "base")
    assert sa_depot.alembic.current(db_url) is None


def test_the_applications_migrations_and_sa_depots_keep_their_own_versions(
    engine: sa.Engine,
) -> None:
    """An application's Alembic (default version table) and sa_depot's coexist; with
    include_name, the application's autogenerate does not offer to drop sa_depot's tables."""
    app_metadata = sa.MetaData()
    sa.Table("app_things", app_metadata, sa.Column("id", sa.Integer, primary_key=True))
    app_version = sa.Table(  # as the application's own `alembic upgrade` leaves it
        "alembic_version", sa.MetaData(), sa.Column("version_num", sa.String(32), primary_key=True)
    )
    with engine.begin() as connection:
        app_metadata.create_all(connection)
        app_version.create(connection)
        connection.execute(app_version.insert().values(version_num="app_rev_1"))
    sa_depot.alembic.upgrade(engine)

    with engine.connect() as connection:
        app_context = MigrationContext.configure(connection)
        assert app_context.get_current_revision() == "app_rev_1"
        seen = MigrationContext.configure(connection, opts={"compare_type": True})
        naive = compare_metadata(seen, app_metadata)
        filtered = compare_metadata(
            MigrationContext.configure(
                connection, opts={"include_name": sa_depot.alembic.include_name}
            ),
            app_metadata,
        )
    dropped = {op[1].name for op in naive if op[0] == "remove_table"}
    assert {pending_removals.name, sa_depot.alembic.VERSION_TABLE} <= dropped
    assert filtered == []
    assert sa_depot.alembic.current(engine) == sa_depot.alembic.head()


def test_make_config_drives_any_alembic_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    output = tmp_path / "upgrade.sql"
    with output.open("w") as buffer:
        config = sa_depot.alembic.make_config(url)
        config.output_buffer = buffer
        command.upgrade(config, "head", sql=True)
    script = output.read_text()
    assert "CREATE TABLE sa_depot_pending_removals" in script
    assert "CREATE TABLE sa_depot_promotions" in script
    assert sa_depot.alembic.VERSION_TABLE in script
    assert not (tmp_path / "db.sqlite").exists()  # offline: the database was not touched


def test_script_location_is_the_source_tree_in_a_checkout() -> None:
    assert Path(sa_depot.alembic.script_location()) == ROOT / "migrations"


def test_a_missing_migrations_directory_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "site-packages" / "sa_depot"
    package.mkdir(parents=True)
    monkeypatch.setattr(sa_depot.alembic, "__file__", str(package / "alembic.py"))
    with pytest.raises(ConfigurationError, match="sa_depot's Alembic migrations are missing"):
        sa_depot.alembic.script_location()


def test_the_wheel_ships_the_migrations_and_an_installed_copy_uses_them(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("sa_depot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert "sa_depot/_migrations/env.py" in names
    assert "sa_depot/_migrations/script.py.mako" in names
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("sa_depot/_migrations/versions/")}
    assert shipped == {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    script = (
        "import sa_depot.alembic as a\n"
        "print(a.script_location())\n"
        f"a.upgrade({url!r})\n"
        f"print(a.current({url!r}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        # before site-packages, where the editable install points at the source tree
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    location, revision = run.stdout.split()
    assert Path(location) == tmp_path / "site" / "sa_depot" / "_migrations"
    assert revision == sa_depot.alembic.head()


def test_without_alembic_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "alembic", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"pip install alembic \(sa-depot's alembic extra"):
        sa_depot.alembic.upgrade(f"sqlite:///{tmp_path / 'db.sqlite'}")
