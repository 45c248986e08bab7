"""One manifest with a job per pipeline kind (a2vid: a 48 kHz tone drives it), the x1.5 and the temporal
upsamplers, rendered on tiny23 through the CLI: frame counts, fps, size and 48 kHz audio read back from the
files, the recipe from the sidecars."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.backends import tiny23 as t23
from ltx2_batch.cli import run
from ltx2_batch.media.probe import probe
from tests.conftest import REPO_ROOT, compose_app, write_input_files, write_manifest
from tests.integration.test_a2vid import write_wav
from tests.integration.test_retake import write_source

pytestmark = pytest.mark.slow

MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, num_inference_steps: 2}
jobs:
  - {name: auto, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: ti2vid, prompt: "A drone shot of mountains.", pipeline: ti2vid, seed: 2}
  - name: keyframe
    prompt: "A red disc turns blue."
    seed: 3
    images: [{path: a.png, frame_idx: 0}, {path: b.png, frame_idx: 8}]
  - name: ic_lora
    prompt: "A figure walks."
    seed: 4
    loras: [{path: ic.safetensors, strength: 1.0, type: ic_lora}]
    video_conditioning: [{path: ref.mp4, strength: 1.0}]
  - {name: hq, prompt: "Waves roll onto a beach.", pipeline: hq, seed: 5}
  - name: x1_5
    prompt: "A lemon on a table."
    pipeline: distilled
    width: 96
    height: 96
    upscale: {spatial: 1.5}
    seed: 6
  - name: a2vid
    prompt: "A drummer plays."
    pipeline: a2vid
    seed: 8
    audio_conditioning: {path: beat.wav}
  - name: retake
    prompt: "The gradient turns red."
    pipeline: retake
    seed: 9
    upscale: {spatial: false}
    retake: {path: source.mp4, start: 0.1, end: 0.3}
  - {name: temporal, prompt: "Rain on a window.", pipeline: distilled, upscale: {temporal: true}, seed: 7}
"""

EXPECTED = {  # name -> (pipeline, stage-1 steps, guidance, frames, fps, size)
    "auto": ("distilled", 8, False, 9, 24.0, 64),
    "ti2vid": ("ti2vid", 2, True, 9, 24.0, 64),
    "keyframe": ("keyframe", 8, False, 9, 24.0, 64),  # on a distilled checkpoint: the distilled recipe
    "ic_lora": ("ic_lora", 8, False, 9, 24.0, 64),
    "hq": ("hq", 2, True, 9, 24.0, 64),
    "x1_5": ("distilled", 8, False, 9, 24.0, 96),
    "temporal": ("distilled", 8, False, 17, 48.0, 64),
    "a2vid": ("a2vid", 2, True, 9, 24.0, 64),
    "retake": ("retake", 8, False, 9, 24.0, 64),  # tiny23 is distilled: the distilled sigmas
}


def test_every_kind_on_tiny23(tmp_path: Path, tiny23_root: Path) -> None:
    models = tiny23_root.parent  # the session's models root: tiny23 built once
    folder = tmp_path / "m"
    write_input_files(folder, ("a.png", "b.png", "ref.mp4"))
    write_wav(folder / "beat.wav", seconds=1.0, rate=48_000)
    write_source(folder / "source.mp4")
    shutil.copy(models / "tiny23" / t23.TINY_LAYOUT["ic_lora"], folder / "ic.safetensors")
    manifest = write_manifest(folder, MANIFEST)
    app = compose_app(
        f"manifest={manifest}", "model=tiny23", f"model.root={models}", f"output.root={tmp_path / 'o'}"
    )
    assert run(app, REPO_ROOT) == 0
    table = pq.read_table(tmp_path / "o" / "m" / "ledger.parquet").to_pylist()
    rows = {r["job_name"]: r for r in table if r["row_kind"] == "job" and r["status"] == "done"}
    assert set(rows) == set(EXPECTED)
    for name, (pipeline, steps, guidance, frames, fps, size) in EXPECTED.items():
        row = rows[name]
        info = probe(row["output_path"])
        assert (info.frame_count, info.frame_rate, info.width, info.height) == (frames, fps, size, size), name
        assert info.audio_sample_rate == 48_000 and info.audio_duration_s == pytest.approx(
            frames / fps, abs=1e-3
        )
        backend = json.loads(Path(row["sidecar_path"]).read_text())["backend"]
        assert (backend["pipeline"], backend["recipe"]["stage_1_steps"]) == (pipeline, steps), name
        assert backend["recipe"]["guidance"] is guidance and row["recipe_guidance"] is guidance
        assert (row["model_family"], row["frame_rate"]) == ("ltx23", fps)
    assert json.loads(Path(rows["hq"]["sidecar_path"]).read_text())["backend"]["recipe"]["sampler"] == "res2s"
    assert (
        json.loads(Path(rows["x1_5"]["sidecar_path"]).read_text())["backend"]["recipe"]["spatial_scale"]
        == 1.5
    )
