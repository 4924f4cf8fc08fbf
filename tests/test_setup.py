"""The set-up a new user follows: scripts/bootstrap.sh (run by scripts/demo.sh) installs only
when pyproject.toml changed, README's commands exist, and the wheel that docs/index.md tells
how to build holds a working package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
# stands for .venv/bin/python: records what it is asked to run
echo "$*" >> "$(dirname "$0")/../calls.log"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the scripts and pyproject.toml, with a .venv whose python only records its
    calls, and a dpkg that says every system package is installed."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "dpkg").write_text("#!/bin/sh\nexit 0\n")
    (stubs / "dpkg").chmod(0o755)
    return tmp_path


def bootstrap(checkout: Path, *args: str) -> list[str]:
    """Run bootstrap.sh; return the pip calls it made."""
    log = checkout / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    environment = {
        **os.environ,
        "PATH": f"{checkout / 'stubs'}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / "bootstrap.sh"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_bootstrap_runs_pip_only_when_pyproject_changed(checkout: Path) -> None:
    first = bootstrap(checkout)
    assert any("pip install -q -e .[all]" in call for call in first), first

    assert bootstrap(checkout) == []  # the demo starts again: no pip run

    with (checkout / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# changed\n")
    assert any("pip install -q -e .[all]" in call for call in bootstrap(checkout))
    assert bootstrap(checkout) == []


def test_other_extras_install_once_and_the_test_setup_holds_them_all(checkout: Path) -> None:
    bootstrap(checkout)
    docs = bootstrap(checkout, "--docs")
    assert any("pip install -q -e .[all,docs]" in call for call in docs), docs
    assert bootstrap(checkout, "--docs") == []
    assert bootstrap(checkout) == []  # the first install is still recorded

    stamp = checkout / ".venv" / ".sa_depot-install"
    digest = stamp.read_text().split()[0]
    stamp.write_text(f"{digest} dev\n")  # what scripts/bootstrap.sh --test leaves
    assert bootstrap(checkout) == []
    assert bootstrap(checkout, "--docs") == []


def test_readme_commands_name_what_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for block in re.findall(r"^```bash\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
        for line in block.splitlines()
        if line.strip()
    ]
    assert "bash scripts/bootstrap.sh --docs" in commands
    for command in commands:
        words = command.split()
        if words[0] == "bash":
            script = ROOT / words[1]
            assert script.is_file(), command
            for option in words[2:]:
                assert f"{option})" in script.read_text(), command  # a case of the script
    # mkdocs comes with the docs extra that `bootstrap.sh --docs` installs
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^docs = \["mkdocs', pyproject, re.MULTILINE)


#: The command docs/index.md gives to build a wheel.
WHEEL_COMMAND = ".venv/bin/pip wheel --no-deps --wheel-dir dist ."


def test_the_wheel_holds_a_working_package(tmp_path: Path) -> None:
    assert WHEEL_COMMAND in (ROOT / "docs" / "index.md").read_text()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("sa_depot-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "sa-depot = sa_depot.cli:main" in archive.read(entry_points).decode()
    assert "sa_depot/py.typed" in names
    assert any(name.startswith("sa_depot/_migrations/versions/") for name in names)
    assert {"sa_depot/demo/static/demo.css", "sa_depot/demo/static/demo.js"} <= names

    # run from the wheel alone (a zip on the path, ahead of the checkout's editable install)
    script = (
        "import sa_depot; from importlib import resources; print(sa_depot.__file__); "
        "print(len(resources.files('sa_depot.demo').joinpath('static/demo.js').read_bytes()))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(wheel)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    location, size = ran.stdout.split()
    assert location.startswith(str(wheel))
    assert int(size) > 0
