"""Alembic environment of sa_depot's own tables (see sa_depot.alembic).

Run it through :func:`sa_depot.alembic.upgrade` (which passes a Connection in
``config.attributes["connection"]``), or through :func:`sa_depot.alembic.make_config` and
:mod:`alembic.command`, with a Connection or a ``sqlalchemy.url``. Its version table is
``sa_depot_alembic_version``, so it never meets an application's own migrations; its
autogenerate sees sa_depot's tables only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic import context

from sa_depot.alembic import TABLES, VERSION_TABLE
from sa_depot.schema import metadata

config = context.config


def include_name(name: str | None, type_: str, parent_names: Mapping[Any, str | None]) -> bool:
    """Compare sa_depot's tables only, whatever else the database holds."""
    return type_ != "table" or name in TABLES


def run_offline() -> None:
    """Write the SQL script instead of running it (``alembic.command.upgrade(..., sql=True)``)."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "sa_depot's migrations need a database: pass a URL to sa_depot.alembic.make_config()"
        )
    context.configure(
        url=url,
        literal_binds=True,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=True,  # so that future ALTERs work on SQLite too
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        run_offline()
        return
    connection = config.attributes.get("connection")
    if isinstance(connection, sa.Connection):
        run_online(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "sa_depot's migrations need a database: call sa_depot.alembic.upgrade(engine), or "
            "pass an Engine, a Connection or a URL to sa_depot.alembic.make_config()"
        )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            run_online(connection)
            connection.commit()
    finally:
        engine.dispose()


main()
