"""Every ```python example in README.md and docs/ runs, and the docs site builds cleanly.

The examples of one page run in order, in one fresh interpreter (a page may build on its own
earlier blocks), in a temporary working directory. Fences marked ```text, ```ini or ```bash
are not executed: use them for configuration that needs a server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    return _FENCE.findall(page.read_text(encoding="utf-8"))


ALL_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [page for page in ALL_PAGES if python_blocks(page)]


def test_the_guides_have_examples() -> None:
    with_examples = {page.name for page in PAGES}
    assert {"README.md", "index.md"} <= with_examples


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page: Path, tmp_path: Path) -> None:
    script = "\n\n".join(python_blocks(page))
    (tmp_path / "example.py").write_text(script, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, (
        f"examples of {page.relative_to(ROOT)} failed:\n{result.stdout}\n{result.stderr}"
    )


def test_docs_site_builds_without_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").exists()
