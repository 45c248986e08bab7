"""Hydra's records kept where users look: a run's config beside its outputs, a sweep's multirun.yaml in
that sweep's own folder (two sweeps under one root do not share one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ltx2_batch.run.record import write_run_record


def test_record_is_written_only_into_an_existing_run_dir(tmp_path: Path) -> None:
    assert not write_run_record(tmp_path / "absent", "manifest: demo\n", ["seed=1"])
    assert not (tmp_path / "absent").exists()
    assert write_run_record(tmp_path, "manifest: demo\n", ["seed=1", "output.video_crf=20"])
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"manifest": "demo"}
    assert yaml.safe_load((tmp_path / "overrides.yaml").read_text()) == ["seed=1", "output.video_crf=20"]


def test_each_sweep_keeps_its_own_multirun_record(tmp_path: Path) -> None:
    def sweep(*args: str) -> None:
        cmd = [sys.executable, "-m", "ltx2_batch", "-m", "plan=true", "output.root=out", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=180, check=False)
        assert done.returncode == 0, done.stderr[-2000:]

    sweep("seed=1,2")
    sweep("manifest=examples/sweep", "seed=7")
    sweep("output.run_name=night", "seed=3,4,5")
    records = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("multirun.yaml"))
    assert records == [
        "out/sweeps/demo/.hydra/multirun.yaml",
        "out/sweeps/night/.hydra/multirun.yaml",
        "out/sweeps/sweep/.hydra/multirun.yaml",
    ]
    night = yaml.safe_load((tmp_path / "out/sweeps/night/.hydra/multirun.yaml").read_text())
    assert "seed=3,4,5" in night["hydra"]["overrides"]["task"]
