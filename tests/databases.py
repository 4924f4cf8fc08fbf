"""Throw-away databases on the machine's real PostgreSQL and MariaDB servers.

Each pytest run creates its own database with a unique name on each server and drops it at
the end, so runs never see each other's tables. Outside CI an unreachable server skips the
tests that need it; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "SA_DEPOT_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_ADMIN_URL = os.environ.get(
    "SA_DEPOT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
ADMIN_URLS = {"postgresql": PG_ADMIN_URL, "mariadb": MARIADB_ADMIN_URL}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


class ServerUnavailable(Exception):
    pass


@contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    """Create a uniquely named database on server ``kind``; yield its URL; drop it after."""
    admin_url = sa.make_url(ADMIN_URLS[kind])
    name = f"sa_depot_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise ServerUnavailable(f"{kind} at {admin_url.render_as_string()}: {exc}") from exc
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()
