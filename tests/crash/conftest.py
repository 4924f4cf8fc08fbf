"""Fixtures of the crash suite: a PostgreSQL database (``pg_url``) holding the crash
application's tables and sa_depot's journal, a local storage in a temporary directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from sa_depot import schema
from sa_depot.fields import lifecycle
from tests.crash.app import App, build


@dataclass
class CrashEnv:
    db_url: str
    storage_dir: Path
    prefix: str
    app: App
    engine: sa.Engine
    tmp: Path

    def child_args(self) -> tuple[str, str, str]:
        return self.db_url, str(self.storage_dir), self.prefix


@pytest.fixture
def crash_env(pg_url: str, tmp_path: Path) -> Iterator[CrashEnv]:
    prefix = f"crash_{uuid.uuid4().hex[:8]}"
    storage_dir = tmp_path / "files"
    app = build(prefix, str(storage_dir))
    engine = sa.create_engine(pg_url)
    schema.metadata.create_all(engine)
    app.metadata.create_all(engine)
    try:
        yield CrashEnv(pg_url, storage_dir, prefix, app, engine, tmp_path)
    finally:
        app.metadata.drop_all(engine)
        schema.metadata.drop_all(engine)
        engine.dispose()
        app.Base.registry.dispose()
        lifecycle.uninstall()
