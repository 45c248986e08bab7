"""The house rules hold for the whole tree: ruff (lint and format) and mypy (annotations checked, strict on
the package; heavy third-party packages not followed), both configured in pyproject.toml, as `make lint` runs
them. A missing tool fails the test: the test extra installs both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's tools, also when they are not on PATH


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / args[0]), *args[1:]]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "ltx2_batch", "tests", "bench")
    assert result.returncode == 0, result.stdout[-4000:]
    formatted = _run("ruff", "format", "--check", "ltx2_batch", "tests", "bench")
    assert formatted.returncode == 0, formatted.stdout[-4000:]


def test_mypy_finds_no_error() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Success: no issues found" in result.stdout
