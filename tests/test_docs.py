"""Every ```python example in README.md and docs/ runs, and the docs site builds cleanly.

The examples of one docs page run in order, in one fresh interpreter (a page may build on its
own earlier blocks), in a temporary working directory. Each README example runs on its own, in
a fresh interpreter: a reader copies one block, not the page. Fences marked ```text, ```ini or
```bash are not executed: use them for configuration that needs a server. A block that shows a
whole file of examples/ verbatim is that program, not a step of the page: tests/examples runs
it in a real server (and tests/test_docs_typing.py checks it as a file of its own).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


#: The programs of examples/, which pages may show verbatim.
EXAMPLE_FILES = sorted((ROOT / "examples").glob("*.py"))
_EXAMPLE_SOURCES = {path.read_text(encoding="utf-8") for path in EXAMPLE_FILES}


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, but those showing a file of examples/ verbatim."""
    blocks = _FENCE.findall(page.read_text(encoding="utf-8"))
    return [block for block in blocks if block not in _EXAMPLE_SOURCES]


README = ROOT / "README.md"
PAGES = [page for page in sorted((ROOT / "docs").rglob("*.md")) if python_blocks(page)]
README_BLOCKS = python_blocks(README)


def test_the_guides_have_examples() -> None:
    assert "index.md" in {page.name for page in PAGES}
    assert len(README_BLOCKS) >= 4


def run_example(script: str, directory: Path) -> subprocess.CompletedProcess[str]:
    (directory / "example.py").write_text(script, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "example.py"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page: Path, tmp_path: Path) -> None:
    result = run_example("\n\n".join(python_blocks(page)), tmp_path)
    assert result.returncode == 0, (
        f"examples of {page.relative_to(ROOT)} failed:\n{result.stdout}\n{result.stderr}"
    )


@pytest.mark.parametrize("number", range(len(README_BLOCKS)), ids=lambda n: f"block{n + 1}")
def test_each_readme_example_runs_on_its_own(number: int, tmp_path: Path) -> None:
    result = run_example(README_BLOCKS[number], tmp_path)
    assert result.returncode == 0, (
        f"README.md's python block {number + 1} failed when run alone:\n"
        f"{result.stdout}\n{result.stderr}"
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
