"""`pipeline: retake`: regenerate a time window of an existing video. Bit for bit against the official
RetakePipeline in bf16 on the CPU at 64x64 x 9 frames (distilled and guided) on both embedded sets; the
manifest rules (the source probed and hashed, the job at the source's size, length and rate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, RetakeSpec, UpscaleSpec
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.select import WeightsOffer
from tests.fixtures.backends import TinySet
from tests.manifests import manifest_jobs

pytestmark = pytest.mark.slow
PROMPT = "The ball turns red."


def write_source(path: Path, frames: int = 9, rate: int = 24) -> Path:
    """A 64x64 clip with a stereo tone: a moving gradient, written by the project's own MP4 writer."""
    from ltx2_batch.media.write import write_mp4

    yy, xx = np.mgrid[0:64, 0:64]
    video = np.stack(
        [np.stack([(xx * 4 + 8 * i) % 256, yy * 4, np.full_like(xx, 90)], -1) for i in range(frames)]
    )
    t = np.arange(int(frames / rate * 48_000)) / 48_000
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    write_mp4(path, video.astype(np.uint8), rate, audio=np.stack([tone, tone]), sample_rate=48_000)
    return path


@pytest.mark.parametrize("guided", [False, True], ids=["distilled", "guided"])
def test_parity_with_official_retake_pipeline(
    family_bf16: tuple[RenderBackend, TinySet], tmp_path: Path, guided: bool
) -> None:
    from ltx_pipelines.retake import RetakePipeline
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, detect_params

    backend, tiny_set = family_bf16  # the session's bf16 backend of each embedded set (tests/fixtures)
    source = write_source(tmp_path / "source.mp4")
    job = RenderJob(
        name="retake",
        prompt=PROMPT,
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=42,
        pipeline=PipelineKind.RETAKE,
        mode=RenderMode.VIDEO,
        num_inference_steps=2,
        upscale=UpscaleSpec(spatial=False),
        retake=RetakeSpec(str(source), start_s=0.1, end_s=0.3, guided=guided),
    )
    ours = backend.render(RenderRequest(job=job))
    checkpoint = tiny_set.path("checkpoint")
    official = RetakePipeline(
        checkpoint_path=checkpoint,
        gemma_root=tiny_set.path("gemma_root"),
        loras=[],
        device=torch.device("cpu"),
    )
    params = detect_params(checkpoint)
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            str(source),
            PROMPT,
            0.1,
            0.3,
            42,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT,
            num_inference_steps=2,
            video_guider_params=params.video_guider_params,
            audio_guider_params=params.audio_guider_params,
            distilled=not guided,
        )
        frames = torch.cat([c.cpu() for c in video], dim=0).numpy()
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())
    assert ours.info["recipe"]["guidance"] is guided


def _load(
    folder: Path, jobs: list[dict], kind: CheckpointKind = CheckpointKind.distilled
) -> tuple[RenderJob, ...]:
    path = folder / "m.yaml"
    base = {"prompt": "a ball", "width": 64, "height": 64, "num_frames": 9, "upscale": {"spatial": False}}
    path.write_text(yaml.safe_dump({"jobs": [{**base, **j} for j in jobs]}))
    weights = WeightsOffer(kind, True)
    return manifest_jobs(path, weights=weights)


def test_retake_manifest_rules(tmp_path: Path) -> None:
    write_source(tmp_path / "source.mp4")
    ok = {"name": "ok", "pipeline": "retake", "retake": {"path": "source.mp4", "start": 0.1, "end": 0.3}}
    [job] = _load(tmp_path, [ok])
    assert job.retake is not None and (job.retake.start_s, job.retake.end_s, job.retake.guided) == (
        0.1,
        0.3,
        False,
    )
    assert len(job.retake.sha256) == 64
    assert _load(tmp_path, [ok], CheckpointKind.dev)[0].retake.guided  # a dev checkpoint: guided
    bad = [
        {**ok, "name": "wrong_size", "width": 128},
        {**ok, "name": "past_end", "retake": {"path": "source.mp4", "start": 0.1, "end": 2.0}},
        {**ok, "name": "empty", "retake": {"path": "source.mp4", "start": 0.3, "end": 0.1}},
        {**ok, "name": "two_stage", "upscale": {"spatial": True}},
        {"name": "no_spec", "pipeline": "retake"},
        {"name": "wrong_kind", "pipeline": "distilled", "retake": ok["retake"]},
    ]
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, bad)
    found = {(p.job_name, p.field) for p in caught.value.problems}
    assert {
        ("wrong_size", "width"),
        ("past_end", "retake.end"),
        ("empty", "retake.end"),
        ("two_stage", "upscale"),
        ("no_spec", "retake"),
        ("wrong_kind", "retake"),
    } <= found


def _write_long_sound_source(path: Path, frames: int, sound_s: float) -> Path:
    """A 64x64 clip of `frames` frames whose AAC sound runs `sound_s` seconds, past the picture (PyAV)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=48_000, layout="stereo")
        for i in range(frames):
            picture = np.full((64, 64, 3), 8 * i, dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(video.encode())
        t = np.arange(int(sound_s * 48_000)) / 48_000
        tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = 48_000
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def _retake(source: Path, **spec: Any) -> RenderJob:
    return RenderJob(
        name="retake",
        prompt=PROMPT,
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=5,
        pipeline=PipelineKind.RETAKE,
        mode=RenderMode.VIDEO,
        upscale=UpscaleSpec(spatial=False),
        retake=RetakeSpec(str(source), start_s=0.1, end_s=0.3, **spec),
    )


def test_where_a_retakes_sound_comes_from(tiny_fp32: RenderBackend, tmp_path: Path) -> None:
    """A source without sound has none to keep: with `regenerate_audio: true` the whole soundtrack is
    generated and the sidecar says so (`audio_origin: generated`), never the source's; with sound, the
    source's outside the window, or everywhere (`regenerate_audio: false`)."""
    from ltx2_batch.media.write import write_mp4

    silent = tmp_path / "silent.mp4"
    write_mp4(silent, np.zeros((9, 64, 64, 3), dtype=np.uint8) + 90, 24)
    mute = tiny_fp32.render(RenderRequest(job=_retake(silent)))
    assert mute.info["audio_origin"] == "generated"
    assert mute.audio is not None and np.abs(mute.audio).max() > 0  # a soundtrack the model made
    sound = write_source(tmp_path / "source.mp4")
    assert tiny_fp32.render(RenderRequest(job=_retake(sound))).info["audio_origin"] == "source_outside_window"
    kept = tiny_fp32.render(RenderRequest(job=_retake(sound, regenerate_audio=False)))
    assert kept.info["audio_origin"] == "source"


def test_a_retake_reads_only_the_frames_and_sound_it_needs(
    tiny_fp32: RenderBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's first `num_frames` pictures are decoded and no more (ltx-pipelines' frame cap), and its
    sound over the clip only when it runs on more than a second past it (a minute here): decoded samples are
    counted as ltx-pipelines converts each decoded frame."""
    from ltx_pipelines.utils import media_io

    from ltx2_batch.backends.ltx2.retake import AUDIO_SLACK_S

    pictures, samples = [0], [0]
    decode_video, convert = media_io.decode_video_from_file, media_io._audio_frame_to_float

    def counted_video(*args: Any, **kwargs: Any) -> Any:
        for frame in decode_video(*args, **kwargs):
            pictures[0] += 1
            yield frame

    def counted_audio(frame: Any) -> Any:
        samples[0] += frame.samples
        return convert(frame)

    monkeypatch.setattr(media_io, "decode_video_from_file", counted_video)
    monkeypatch.setattr(media_io, "_audio_frame_to_float", counted_audio)
    source = _write_long_sound_source(tmp_path / "long.mp4", frames=25, sound_s=60.0)
    result = tiny_fp32.render(RenderRequest(job=_retake(source)))
    assert result.frames.shape[0] == pictures[0] == 9
    assert 0.375 * 48_000 <= samples[0] < (0.375 + AUDIO_SLACK_S) * 48_000
    assert result.info["audio_origin"] == "source_outside_window"
