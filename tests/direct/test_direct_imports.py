"""Direct uploads cost a minimal installation nothing: the column types reach the token code,
which imports no optional dependency (Werkzeug, boto3, itsdangerous, the cloud SDKs)."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("werkzeug", "boto3", "botocore", "itsdangerous", "google", "azure")


def test_the_field_types_import_no_optional_dependency() -> None:
    script = (
        "import sys, sa_depot.fields.sqlalchemy, sa_depot.direct, sa_depot.direct.companion\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
