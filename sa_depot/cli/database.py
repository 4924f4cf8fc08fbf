"""What the commands that read the application's database share: the ``--database-url`` and
``--metadata`` options, the engine (a mistyped SQLite path is an error, never a new empty
database) and the application's metadata, imported as ``python -m`` would."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from sa_depot.cli.config import ENV_DATABASE_URL
from sa_depot.exceptions import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])


def database_url_option(function: F) -> F:
    """``--database-url URL``."""
    option = click.option(
        "--database-url",
        help=f"The application's database [${ENV_DATABASE_URL}, database_url in the "
        "configuration].",
    )
    return option(function)


def metadata_option(default_from: str) -> Callable[[F], F]:
    """``--metadata MODULE:ATTRIBUTE`` (repeatable); ``default_from`` says where the
    configuration file gives the default."""

    def decorate(function: F) -> F:
        option = click.option(
            "--metadata",
            "metadata_specs",
            multiple=True,
            metavar="MODULE:ATTRIBUTE",
            help="The MetaData (or declarative base) of the tables holding files, e.g. "
            f"myapp.models:Base.metadata; repeat for several [{default_from}].",
        )
        return option(function)

    return decorate


def require_url(url: str | None) -> str:
    """``url``, or a usage error saying where a database URL comes from."""
    if not url:
        raise click.UsageError(
            f"no database: pass --database-url URL, set ${ENV_DATABASE_URL}, or put "
            "database_url in the configuration file"
        )
    return url


def application_metadata(specs: list[str]) -> list[sa.MetaData | sa.Table]:
    """The MetaData (or Tables) named by ``specs`` (``module:attribute``), imported with the
    current directory on the import path, as ``python -m`` would."""
    from sa_depot.collector import load_metadata

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return [item for spec in specs for item in load_metadata(spec)]


def database_engine(url: str) -> sa.Engine:
    """An Engine on ``url``; a malformed URL, or a SQLite file that does not exist (reading
    commands never create one), is a :class:`~sa_depot.exceptions.ConfigurationError` that
    never shows a password."""
    shown = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigurationError(
            f"database URL {shown!r}: {exc}; write it as SQLAlchemy expects, e.g. "
            "postgresql+psycopg://user:password@host/dbname or sqlite:///app.sqlite"
        ) from exc
    _require_sqlite_file(engine.url, shown)
    return engine


def _require_sqlite_file(url: sa.URL, shown: str) -> None:
    """Refuse a SQLite database file that does not exist: SQLite would create an empty one,
    and a command reading it would find no row in it."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri") == "true":
        return
    database = url.database
    if not database or database == ":memory:":
        return
    path = Path(database)
    if not path.is_file():
        raise ConfigurationError(
            f"database URL {shown!r}: the SQLite file {str(path.resolve())!r} does not exist "
            "(nothing was created); check the path (sqlite:///relative/path.sqlite is "
            "relative to the current directory, sqlite:////absolute/path.sqlite is absolute)"
        )


__all__ = [
    "application_metadata",
    "database_engine",
    "database_url_option",
    "metadata_option",
    "require_url",
]
