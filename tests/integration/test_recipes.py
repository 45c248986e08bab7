"""`pipeline: auto` runs the recipe the checkpoint is made for, recorded in the sidecar and the ledger;
a temporally upscaled clip records the file's own rate and duration. End to end on the tiny set (local
engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.media.probe import probe
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("warm_run_backends")]

AUTO = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: auto, audio: false}
jobs:
  - name: auto
    prompt: "A cat walks on a sunny street."
    seed: 1
"""

TEMPORAL = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - name: doubled
    prompt: "A drone shot of mountains at sunset."
    seed: 2
    upscale: {spatial: true, temporal: true}
"""


def _done(output_dir: Path) -> dict:
    table = pq.read_table(output_dir / "ledger.parquet").to_pylist()
    rows = [r for r in table if r["row_kind"] == "job" and r["status"] == "done"]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize(
    ("override", "pipeline", "steps", "guidance", "lora"),
    [
        ((), "distilled", 8, False, False),  # the tiny set is a distilled checkpoint
        (("model.checkpoint_kind=dev",), "ti2vid", 40, True, True),  # a dev preset on the tiny files
    ],
)
def test_auto_runs_the_checkpoints_recipe(
    tmp_path: Path,
    app_factory: AppFactory,
    override: tuple[str, ...],
    pipeline: str,
    steps: int,
    guidance: bool,
    lora: bool,
) -> None:
    manifest = write_manifest(tmp_path / "m", AUTO)
    assert run(app_factory(f"manifest={manifest}", *override), REPO_ROOT) == 0
    row = _done(tmp_path / "outputs" / "m")
    backend = json.loads(Path(row["sidecar_path"]).read_text())["backend"]
    assert backend["pipeline"] == row["pipeline"] == pipeline
    assert backend["checkpoint_kind"] == ("dev" if override else "distilled")
    recipe = backend["recipe"]
    assert recipe["stage_1_steps"] == len(backend["sigmas"]["stage1"]) - 1 == steps
    assert recipe["guidance"] is guidance and recipe["stage_2_distilled_lora"] is lora
    assert (row["recipe_steps"], row["recipe_guidance"], row["recipe_stage_2_lora"]) == (
        steps,
        guidance,
        lora,
    )
    assert row["model_family"] == backend["model_family"] == "ltx2"
    assert row["model_version"] == backend["model_version"]


def test_temporal_upscale_records_the_files_rate_and_duration(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    manifest = write_manifest(tmp_path / "m", TEMPORAL)
    assert run(app_factory(f"manifest={manifest}", "export.dataset=true"), REPO_ROOT) == 0
    out = tmp_path / "outputs" / "m"
    row = _done(out)
    info = probe(row["output_path"])
    assert info.frame_count == row["frames_written"] == 17  # 9 frames doubled: 8k+1 -> 16k+1
    assert abs(info.video_duration_s - 17 / 48) < 1e-3
    assert row["frame_rate"] == 48.0 and abs(row["duration_s"] - 17 / 48) < 1e-9
    sidecar = json.loads(Path(row["sidecar_path"]).read_text())
    assert sidecar["frame_rate"] == 48.0 and abs(sidecar["duration_s"] - 17 / 48) < 1e-9
    exported = pq.read_table(out / "dataset" / "metadata.parquet").to_pylist()
    assert [(r["fps"], round(r["duration_s"], 6)) for r in exported] == [(48.0, round(17 / 48, 6))]
