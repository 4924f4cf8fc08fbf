"""The scripts of examples/ run and say what they did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_example_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "content: b'Hello World'" in result.stdout
    assert "exists? False, False" in result.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "sa-depot"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("demo", "ls", "stat", "serve"):
        assert f"  {command} " in result.stdout
