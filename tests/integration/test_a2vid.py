"""`pipeline: a2vid`: an audio file drives the video. Bit for bit against the official
A2VidPipelineTwoStage in bf16 on the CPU at 64x64 x 9 frames on both embedded sets; the manifest rules
(probe, hash, start, the fields only a2vid takes); a render through the CLI writes the input audio back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.core.jobs import AudioCondition, PipelineKind, RenderJob, RenderMode
from ltx2_batch.errors import ManifestError
from tests.conftest import AppFactory
from tests.fixtures.backends import TinySet
from tests.manifests import manifest_jobs

pytestmark = pytest.mark.slow
PROMPT = "A drummer plays a steady beat in a small room."


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A stereo tone with PyAV (16-bit PCM WAV)."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.stack([tone, tone]).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_parity_with_official_a2vid_pipeline(
    family_bf16: tuple[RenderBackend, TinySet], tmp_path: Path
) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.a2vid_two_stage import A2VidPipelineTwoStage
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, detect_params

    backend, tiny_set = family_bf16  # the session's bf16 backend of each embedded set (tests/fixtures)
    wav = write_wav(tmp_path / "beat.wav")
    job = RenderJob(
        name="a2vid",
        prompt=PROMPT,
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=42,
        pipeline=PipelineKind.A2VID,
        mode=RenderMode.VIDEO,
        num_inference_steps=2,
        audio_conditioning=AudioCondition(str(wav), start_s=0.1),
    )
    ours = backend.render(RenderRequest(job=job))
    lora = [LoraPathStrengthAndSDOps(tiny_set.path("distilled_lora"), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)]
    checkpoint = tiny_set.path("checkpoint")
    official = A2VidPipelineTwoStage(
        checkpoint_path=checkpoint,
        distilled_lora=lora,
        spatial_upsampler_path=tiny_set.path("spatial_upsampler"),
        gemma_root=tiny_set.path("gemma_root"),
        loras=[],
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT,
            seed=42,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=24.0,
            num_inference_steps=2,
            video_guider_params=detect_params(checkpoint).video_guider_params,
            images=[],
            audio_path=str(wav),
            audio_start_time=0.1,
        )
        frames = torch.cat([c.cpu() for c in video], dim=0).numpy()
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.float().cpu().numpy())
    assert ours.sample_rate == audio.sampling_rate == 16_000


def _load(folder: Path, jobs: list[dict]) -> tuple[RenderJob, ...]:
    path = folder / "m.yaml"
    base = {"prompt": "a beat", "width": 64, "height": 64, "num_frames": 9}
    path.write_text(yaml.safe_dump({"jobs": [{**base, **j} for j in jobs]}))
    return manifest_jobs(path)


def test_a2vid_manifest_rules(tmp_path: Path) -> None:
    write_wav(tmp_path / "beat.wav", seconds=1.0)
    (tmp_path / "silent.txt").write_text("not audio")
    ok = {"name": "ok", "pipeline": "a2vid", "audio_conditioning": {"path": "beat.wav", "start": 0.25}}
    [job] = _load(tmp_path, [ok])
    assert job.audio_conditioning is not None and job.audio_conditioning.start_s == 0.25
    assert len(job.audio_conditioning.sha256) == 64
    write_wav(tmp_path / "beat.wav", seconds=0.9)  # other bytes: another id
    assert _load(tmp_path, [ok])[0].job_id != job.job_id
    bad = [
        {"name": "no_audio", "pipeline": "a2vid"},
        {"name": "not_audio", "pipeline": "a2vid", "audio_conditioning": {"path": "silent.txt"}},
        {"name": "late", "pipeline": "a2vid", "audio_conditioning": {"path": "beat.wav", "start": 5}},
        {"name": "wrong_kind", "pipeline": "distilled", "audio_conditioning": {"path": "beat.wav"}},
        {**ok, "name": "one_stage", "upscale": {"spatial": False}},
    ]
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, bad)
    found = {(p.job_name, p.field) for p in caught.value.problems}
    assert found == {
        ("no_audio", "audio_conditioning"),
        ("not_audio", "audio_conditioning.path"),
        ("late", "audio_conditioning.start"),
        ("wrong_kind", "audio_conditioning"),
        ("one_stage", "upscale.spatial"),
    }


def test_a2vid_through_the_cli_writes_the_input_audio(tmp_path: Path, app_factory: AppFactory) -> None:
    import pyarrow.parquet as pq

    from ltx2_batch.cli import run
    from ltx2_batch.media.probe import probe
    from tests.conftest import REPO_ROOT, write_manifest

    folder = tmp_path / "m"
    folder.mkdir()
    write_wav(folder / "beat.wav", seconds=2.0, rate=16_000)
    manifest = write_manifest(
        folder,
        "jobs:\n  - {name: beat, prompt: 'A drummer.', width: 64, height: 64, num_frames: 9, pipeline: a2vid,"
        " num_inference_steps: 2, audio_conditioning: {path: beat.wav}}\n",
    )
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    rows = pq.read_table(tmp_path / "outputs" / "m" / "ledger.parquet").to_pylist()
    [row] = [r for r in rows if r["row_kind"] == "job" and r["status"] == "done"]
    info = probe(row["output_path"])
    assert info.frame_count == 9 and info.audio_sample_rate == 16_000
    assert info.audio_duration_s == pytest.approx(9 / 24, abs=0.05)
    assert json.loads(Path(row["sidecar_path"]).read_text())["backend"]["pipeline"] == "a2vid"
