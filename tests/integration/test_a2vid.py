"""`pipeline: a2vid`: an audio file drives the video. Bit for bit against the official
A2VidPipelineTwoStage in bf16 on the CPU at 64x64 x 9 frames on both embedded sets; the manifest rules
(probe, hash, start, the fields only a2vid takes); a render through the CLI writes the input audio back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.core.families import ModelFamily
from ltx2_batch.core.jobs import AudioCondition, PipelineKind, RenderJob, RenderMode
from ltx2_batch.errors import ManifestError
from tests.conftest import AppFactory
from tests.fixtures.backends import TinySet
from tests.manifests import manifest_jobs

pytestmark = pytest.mark.slow
PROMPT = "A drummer plays a steady beat in a small room."


LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16_000, channels: int = 2) -> Path:
    """A tone per channel (stereo: the same tone twice) with PyAV, 16-bit PCM WAV in the channel count's
    usual layout (6: 5.1, FL FR FC LFE BL BR)."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    pitches = (
        [220.0] * 2 if channels == 2 else [110.0 * (c + 2) for c in range(channels)]
    )  # stereo: one tone twice
    tones = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in pitches]) * 32767
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout=LAYOUTS[channels])
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(tones.astype(np.int16).T).reshape(1, -1),
            format="s16",
            layout=LAYOUTS[channels],
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
    # The window read is the official class's: `start .. start + max_duration`, and without max_duration
    # the clip's duration, as its command line defaults `--audio-max-duration` (the class alone would read
    # to the end of the file). One family each way.
    max_duration = 0.5 if tiny_set.family is ModelFamily.ltx23 else None
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
        audio_conditioning=AudioCondition(str(wav), start_s=0.1, max_duration_s=max_duration),
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
            audio_max_duration=9 / 24 if max_duration is None else max_duration,
        )
        frames = torch.cat([c.cpu() for c in video], dim=0).numpy()
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.float().cpu().numpy())
    assert ours.sample_rate == audio.sampling_rate == 16_000


def _a2vid(path: Path, **kw: Any) -> RenderJob:
    return RenderJob(
        name="a2vid",
        prompt=PROMPT,
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=7,
        pipeline=PipelineKind.A2VID,
        mode=RenderMode.VIDEO,
        num_inference_steps=2,
        audio_conditioning=AudioCondition(str(path), **kw),
    )


def test_mono_and_six_channel_audio_are_mixed_to_the_encoders_two(
    tiny_fp32: RenderBackend, tmp_path: Path
) -> None:
    """Mono (the commonest file) is copied to both sides: the clip is the one a stereo file holding the same
    tone twice drives, bit for bit. A 5.1 file is folded to stereo by its layout (media/channels.py); the
    file gets the audio the model heard, at the file's own rate."""
    from ltx2_batch.media.channels import mix_weights

    mono = tiny_fp32.render(RenderRequest(job=_a2vid(write_wav(tmp_path / "mono.wav", channels=1))))
    stereo = tiny_fp32.render(RenderRequest(job=_a2vid(write_wav(tmp_path / "stereo.wav", channels=2))))
    assert mono.audio.shape == (2, 6000) and mono.sample_rate == 16_000  # 9 frames at 24 fps: 0.375 s
    assert np.array_equal(mono.audio[0], mono.audio[1])
    assert np.array_equal(mono.frames, stereo.frames) and np.array_equal(mono.audio, stereo.audio)
    assert mono.info["audio_origin"] == "input"
    six = write_wav(tmp_path / "surround.wav", channels=6)
    surround = tiny_fp32.render(RenderRequest(job=_a2vid(six)))
    assert surround.audio.shape == (2, 6000)
    t = np.arange(6000) / 16_000
    tones = [0.3 * np.sin(2 * np.pi * 110.0 * (c + 2) * t) * 32767 for c in range(6)]
    channels = np.stack([tone.astype(np.int16) / 32768 for tone in tones])  # as written, as read back
    expected = np.asarray(mix_weights(("FL", "FR", "FC", "LFE", "BL", "BR"), 2)) @ channels
    assert np.allclose(surround.audio, expected, atol=1e-6)
    assert not np.array_equal(surround.frames, mono.frames)


def test_a_long_file_is_decoded_over_the_used_window_only(
    tiny_fp32: RenderBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A minute of audio driving 9 frames from 30 s: the decoder sees under a second of it (samples counted
    as ltx-pipelines converts each decoded frame), not the 60 s the official class would decode; with
    `max_duration` the window is that long, as the official class reads it."""
    from ltx_pipelines.utils import media_io

    decoded = [0]
    convert = media_io._audio_frame_to_float

    def counted(frame: Any) -> Any:
        decoded[0] += frame.samples
        return convert(frame)

    monkeypatch.setattr(media_io, "_audio_frame_to_float", counted)
    long = write_wav(tmp_path / "minute.wav", seconds=60.0, channels=1)
    clip = tiny_fp32.render(RenderRequest(job=_a2vid(long, start_s=30.0)))
    assert clip.audio.shape == (2, 6000)  # the clip's 0.375 s, written back
    assert 6000 <= decoded[0] < 16_000  # the window and the codec frames around it: under 1 s of 60
    decoded[0] = 0
    longer = tiny_fp32.render(RenderRequest(job=_a2vid(long, start_s=30.0, max_duration_s=2.0)))
    assert longer.audio.shape == (2, 32_000)  # the writer keeps the clip's 0.375 s of it
    assert 32_000 <= decoded[0] < 48_000
    assert np.array_equal(longer.audio[:, :6000], clip.audio)


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
    write_wav(folder / "beat.wav", seconds=2.0, rate=16_000, channels=1)  # mono: the commonest file
    manifest = write_manifest(
        folder,
        "jobs:\n  - {name: beat, prompt: 'A drummer.', width: 64, height: 64, num_frames: 9, pipeline: a2vid,"
        " num_inference_steps: 2, audio_conditioning: {path: beat.wav}}\n",
    )
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    rows = pq.read_table(tmp_path / "outputs" / "m" / "ledger.parquet").to_pylist()
    [row] = [r for r in rows if r["row_kind"] == "job" and r["status"] == "done"]
    assert row["status"] == "done"
    info = probe(row["output_path"])
    assert info.frame_count == 9 and info.audio_sample_rate == 16_000 and info.audio_channels == 2
    assert info.audio_duration_s == pytest.approx(9 / 24, abs=0.05)
    assert json.loads(Path(row["sidecar_path"]).read_text())["backend"]["pipeline"] == "a2vid"
