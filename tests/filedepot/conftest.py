"""Fixtures of the filedepot compatibility suite: what an application written for filedepot
0.12.0 does, with ``depot`` renamed to ``sa_depot`` in its imports.

* ``memory``: a memory storage configured as ``default``;
* ``engine``: a SQLite engine with sa_depot's table;
* the ORM lifecycle is uninstalled after each test, so that every test's models equip
  themselves.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sa_depot import schema
from sa_depot.fields import lifecycle
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.orm import records


@pytest.fixture
def memory() -> FileStorage:
    return DepotManager.configure("default", {"depot.backend": "depot.io.memory.MemoryFileStorage"})


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    schema.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_lifecycle() -> Iterator[None]:
    yield
    gc.collect()
    records.remove_abandoned()
    lifecycle.uninstall()


def image(size: tuple[int, int], image_format: str = "PNG") -> bytes:
    """An image of ``size`` pixels, encoded in ``image_format``."""
    from PIL import Image

    output = io.BytesIO()
    Image.new("RGB", size, (180, 60, 20)).save(output, image_format)
    return output.getvalue()
