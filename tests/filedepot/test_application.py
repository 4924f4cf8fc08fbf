"""An application written against filedepot 0.12.0's documentation runs on sa_depot with its
imports renamed and nothing else, on the database and files filedepot itself created.

``application/app.py`` is that application; ``application/fixture/`` is what filedepot 0.12.0
wrote when it ran ``app.py create`` (rebuild it with ``application/make_fixture.py``, which
also runs ``app.py check`` on filedepot). Here ``app.py check`` runs on sa_depot, in a fresh
interpreter, on a copy of the fixture: old rows are read and served (middleware, a view with
FileServeApp, thumbnails of a filter, of the guide's own filter and of
UploadedImageWithThumb), the alias is re-pointed, rows are added, replaced, deleted and rolled
back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from sa_depot import schema

APPLICATION = Path(__file__).parent / "application"


def renamed_imports(source: str) -> str:
    """``from depot.x import y`` -> ``from sa_depot.x import y``: the only change allowed."""
    return re.sub(r"^(from|import) depot\b", r"\1 sa_depot", source, flags=re.MULTILINE)


def test_a_filedepot_application_runs_with_renamed_imports(tmp_path: Path) -> None:
    shutil.copytree(APPLICATION / "fixture", tmp_path, dirs_exist_ok=True)
    source = (APPLICATION / "app.py").read_text()
    renamed = renamed_imports(source)
    assert renamed.count("from sa_depot.") == source.count("from depot.") > 5
    (tmp_path / "app.py").write_text(renamed)
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"

    # No schema step: sa_depot creates its own tables the first time it needs them.
    result = subprocess.run(
        [sys.executable, "app.py", "check", url, str(tmp_path / "files")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("checked")
    engine = sa.create_engine(url)
    try:
        assert {t.name for t in schema.metadata.sorted_tables} <= set(
            sa.inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
