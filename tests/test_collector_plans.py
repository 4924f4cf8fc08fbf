"""The collector's sweep plans its lookups with the statistics of its marks table, on PostgreSQL.

PostgreSQL's autovacuum never analyzes temporary tables; without statistics the planner took
``location = ?`` for selective and filtered every mark of the location for each page of the
sweep (an hour for a sweep of 1,000,000 files: see benchmarks/RESULTS.md, section ``scale``;
with them it searches the index on ``(location, file_id)``). Which plan wins depends on the
table's size (a scan is cheaper for a few thousand marks), so this checks that the planner
has the statistics when the sweep starts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from sa_depot import schema
from sa_depot.collector import collect
from sa_depot.database import collector as collector_module
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager

ROWS = 2_000


def test_the_sweep_starts_with_statistics_of_the_marks(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = DepotManager.configure(
        "default", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    table = sa.Table(
        f"plans_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("content", sa.Text),
    )
    # the collector reads the columns of sa_depot's field type; a plain table clause writes them
    typed = sa.Table(
        table.name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("content", UploadedFileField()),
    )
    engine = sa.create_engine(pg_url)
    estimates: list[float] = []
    original = collector_module._Marks.referenced

    def with_estimate(self: Any, location: object, file_ids: Sequence[str]) -> set[str]:
        if not estimates:  # the planner's idea of the table's size (-1: never analyzed)
            estimate = self.connection.exec_driver_sql(
                f"SELECT reltuples FROM pg_class WHERE relname = '{self.table.name}'"
            ).scalar_one()
            estimates.append(float(estimate))
        return original(self, location, file_ids)

    monkeypatch.setattr(collector_module._Marks, "referenced", with_estimate)
    try:
        schema.metadata.create_all(engine)
        table.create(engine)
        ids = [storage.create(FileIntent(b"x", "f.txt", "text/plain")) for _ in range(ROWS)]
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [{"id": n, "content": _descriptor(i)} for n, i in enumerate(ids, 1)],
            )
        report = collect(engine, typed)
    finally:
        table.drop(engine, checkfirst=True)
        schema.metadata.drop_all(engine)
        engine.dispose()
    assert report.rows_scanned == ROWS and report.referenced == ROWS
    assert not report.orphans and not report.missing
    assert estimates == [ROWS]  # one mark per file, counted by ANALYZE


def _descriptor(file_id: str) -> str:
    path = f"default/{file_id}"
    return json.dumps({"file_id": file_id, "path": path, "depot_name": "default", "files": [path]})
