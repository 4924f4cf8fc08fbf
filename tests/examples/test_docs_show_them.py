"""The example applications appear in the docs exactly as they are in examples/ (the docs' own
test runs those blocks; this one keeps them from drifting apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("example", "page"),
    [
        ("flask_app.py", "flask.md"),
        ("fastapi_app.py", "async.md"),
        ("direct_uploads.py", "direct-uploads.md"),
    ],
)
def test_the_docs_show_the_example_verbatim(example: str, page: str) -> None:
    source = (ROOT / "examples" / example).read_text(encoding="utf-8")
    assert f"```python\n{source}```" in (ROOT / "docs" / page).read_text(encoding="utf-8")
