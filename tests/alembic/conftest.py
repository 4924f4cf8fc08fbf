"""Fixtures of the Alembic and data-migration suite.

* ``engine``: an Engine on each of SQLite, PostgreSQL and MariaDB (through ``db_url``); every
  table the test creates (sa_depot's own and version tables included) is dropped at teardown.
* ``storages``: two local storages, ``old`` and ``new``, in the test's temporary directory.
"""

from __future__ import annotations

import gc
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from sa_depot.fields import lifecycle
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.orm import records


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    """A small PNG image, different for every seed."""
    from PIL import Image

    output = io.BytesIO()
    Image.new("RGB", size, (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(output, "PNG")
    return output.getvalue()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def drop_tables_except(url: str, keep: set[str]) -> None:
    """Drop the tables of the database that are not in ``keep`` (the server databases live for
    the whole run: leave them as the test found them)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            reflected = sa.MetaData()
            reflected.reflect(connection, only=lambda name, _: name not in keep)
            reflected.drop_all(connection)
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """An Engine on each database; the tables the test creates are dropped afterwards."""
    before = table_names(db_url)
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()
    drop_tables_except(db_url, before)


@pytest.fixture(autouse=True)
def _fresh_lifecycle() -> Iterator[None]:
    yield
    gc.collect()
    records.remove_abandoned()
    lifecycle.uninstall()


@dataclass
class Storages:
    old: FileStorage
    new: FileStorage

    def paths(self, name: str) -> set[str]:
        """Every file a storage holds, as ``'<name>/<id>'``."""
        return {f"{name}/{file_id}" for file_id in DepotManager.get(name).list()}


def local_storage(name: str, root: Path) -> FileStorage:
    return DepotManager.configure(
        name,
        {
            "depot.backend": "sa_depot.io.local.LocalFileStorage",
            "depot.storage_path": str(root / name),
            "depot.fsync": "false",
        },
    )


@pytest.fixture
def storages(tmp_path: Path) -> Storages:
    return Storages(local_storage("old", tmp_path), local_storage("new", tmp_path))


__all__ = ["Storages", "drop_tables_except", "png", "sha256", "unique"]
