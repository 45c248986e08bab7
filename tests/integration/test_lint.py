"""The house lint rules hold for the whole tree (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_ruff_is_clean() -> None:
    beside_python = Path(sys.executable).parent / "ruff"  # the venv's ruff, also when it is not on PATH
    ruff = str(beside_python) if beside_python.is_file() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [ruff, "check", "ltx2_batch", "tests", "bench"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:]
