"""Make sure sa_depot's tables exist before the session lifecycle writes to them.

An application switching from filedepot renames its imports and nothing else: its database
has none of sa_depot's tables (:mod:`sa_depot.database.schema`). Rather than failing its first
edit or delete, the lifecycle creates them the first time it needs them on an engine, and logs
a warning naming the tables, so that they can be added to the application's migrations.

Where the database runs DDL inside transactions (SQLite, PostgreSQL), the tables are created
in the transaction that needs them: they appear with its commit, and vanish with its rollback
(to be created again by the next one). MySQL and MariaDB commit any transaction that runs DDL,
so there they are created on a connection of their own, committed at once.
"""

from __future__ import annotations

import logging
import threading
import weakref

import sqlalchemy as sa

from sa_depot.database.schema import metadata

_log = logging.getLogger(__name__)

#: Engines whose database was seen holding every table (committed): checked once per engine.
_present: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
_lock = threading.Lock()

#: Dialects whose DDL commits the current transaction.
_AUTOCOMMITTING_DDL = {"mysql", "mariadb", "oracle"}


def ensure_schema(connection: sa.Connection) -> None:
    """Create sa_depot's tables if the database of ``connection`` lacks any (see the module
    docs). Costs one catalog query per engine until the tables are seen committed, then
    nothing."""
    engine = connection.engine
    if engine in _present:
        return
    inspector = sa.inspect(connection)
    missing = [t for t in metadata.sorted_tables if not inspector.has_table(t.name)]
    if not missing:
        with _lock:
            _present.add(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    if connection.dialect.name in _AUTOCOMMITTING_DDL:
        with engine.connect() as own:
            metadata.create_all(own, tables=missing, checkfirst=True)
            own.commit()
        with _lock:
            _present.add(engine)
    else:
        metadata.create_all(connection, tables=missing, checkfirst=True)
    _log.warning(
        "sa_depot created its tables %s in %s, which lacked them. Add them to your schema "
        "management: run sa_depot's Alembic migration (see docs/alembic.md), or call "
        "sa_depot.schema.metadata.create_all(engine) at start-up.",
        ", ".join(t.name for t in missing),
        where,
    )


def forget() -> None:
    """Forget which engines were seen holding the tables (for tests that drop them)."""
    with _lock:
        _present.clear()


__all__ = ["ensure_schema", "forget"]
