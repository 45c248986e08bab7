"""Hydra's records kept where users look: a run's config beside its outputs. (A sweep's multirun.yaml in that
sweep's own folder is written by Hydra's multirun in the process: tests/integration/test_sweep.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from ltx2_batch.run.record import write_run_record


def test_record_is_written_only_into_an_existing_run_dir(tmp_path: Path) -> None:
    assert not write_run_record(tmp_path / "absent", "manifest: demo\n", ["seed=1"])
    assert not (tmp_path / "absent").exists()
    assert write_run_record(tmp_path, "manifest: demo\n", ["seed=1", "output.video_crf=20"])
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"manifest": "demo"}
    assert yaml.safe_load((tmp_path / "overrides.yaml").read_text()) == ["seed=1", "output.video_crf=20"]
