"""Inputs the newer pipelines can trust (issue 23, items 5, 6, 10): a2vid's driving audio and a retake's
source probed at validation (headers and packets, never a full decode), with each refusal naming its
field and its fix; and the smaller refusals that used to end in a traceback or blame the wrong thing.

Media files are made in-process with PyAV (milliseconds each); docs/behaviour.md, "Driving audio
(a2vid)" and "Retake sources", states the rules pinned here.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from ltx2_batch.config import AppConfig
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import compute_job_id
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.manifest.select import WeightsOffer
from ltx2_batch.run.checks import settings_problems
from tests.manifests import manifest_jobs

_RNG = np.random.default_rng(0)


def write_audio(path: Path, seconds: float, layout: str = "mono", rate: int = 16_000) -> Path:
    """AAC (or PCM for .wav) of `seconds`, with PyAV."""
    codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
    fmt = "s16" if codec == "pcm_s16le" else "fltp"
    channels = 1 if layout == "mono" else 2
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        samples = np.zeros((channels, int(seconds * rate)), np.int16 if fmt == "s16" else np.float32)
        data = samples.reshape(1, -1) if fmt == "s16" else samples
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def write_source(
    path: Path, frames: int, rate: Fraction = Fraction(24), audio_s: float | None = None, size: int = 64
) -> Path:
    """A video of noise frames (so it can be truncated meaningfully), its index first (`faststart`), with
    an optional AAC track of `audio_s` seconds."""
    options = {"movflags": "faststart"} if path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("mpeg4", rate=rate)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=16_000, layout="mono") if audio_s else None
        for _ in range(frames):
            image = _RNG.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None and audio_s:
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, int(audio_s * 16_000)), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16_000, 0
            for packet in [*audio.encode(frame), *audio.encode(None)]:
                out.mux(packet)
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load(folder: Path, jobs: list[dict], kind: CheckpointKind = CheckpointKind.distilled) -> tuple:
    path = folder / "m.yaml"
    base = {"prompt": "a ball", "width": 64, "height": 64, "num_frames": 9}
    path.write_text(yaml.safe_dump({"jobs": [{**base, **j} for j in jobs]}))
    return manifest_jobs(path, weights=WeightsOffer(kind, True))


def _problems(folder: Path, jobs: list[dict], kind: CheckpointKind = CheckpointKind.distilled) -> dict:
    with pytest.raises(ManifestError) as caught:
        _load(folder, jobs, kind)
    return {(p.job_name, p.field): p.message for p in caught.value.problems}


A2VID = {"name": "a", "pipeline": "a2vid"}


def test_mono_driving_audio_passes_and_its_channels_are_recorded_outside_the_id(folder: Path) -> None:
    write_audio(folder / "voice.m4a", 1.0)
    write_audio(folder / "stereo.wav", 1.0, layout="stereo")
    mono, stereo = _load(
        folder,
        [
            {**A2VID, "audio_conditioning": {"path": "voice.m4a"}},
            {**A2VID, "name": "b", "audio_conditioning": {"path": "stereo.wav"}},
        ],
    )
    assert (mono.audio_conditioning.channels, stereo.audio_conditioning.channels) == (1, 2)
    unprobed = mono.audio_conditioning.__class__(**{**mono.audio_conditioning.__dict__, "channels": 0})
    assert compute_job_id(mono.__class__(**{**mono.__dict__, "audio_conditioning": unprobed}), "fp") == (
        mono.job_id
    )


def test_driving_audio_that_cannot_cover_the_clip_is_refused_with_its_fix(folder: Path) -> None:
    write_audio(folder / "short.m4a", 0.5)  # the clips below are 121 frames at 24 fps: 5.042 s
    write_audio(folder / "long.wav", 6.0)
    long_clip = {"num_frames": 121}
    found = _problems(
        folder,
        [
            {**A2VID, **long_clip, "audio_conditioning": {"path": "short.m4a"}},
            {**A2VID, **long_clip, "name": "late", "audio_conditioning": {"path": "long.wav", "start": 3}},
            {
                **A2VID,
                **long_clip,
                "name": "cut",
                "audio_conditioning": {"path": "long.wav", "max_duration": 0.01},
            },
        ],
    )
    short = found["a", "audio_conditioning.path"]
    assert "shorter than the clip (5.042 s: 121 frames at 24 fps)" in short
    assert "render at most 9 frames (num_frames: 9)" in short
    late = found["late", "audio_conditioning.start"]
    assert "lasts 3.000 s" in late and "start at most 0.958 s" in late
    assert "set it to at least 5.042" in found["cut", "audio_conditioning.max_duration"]


def test_audio_whose_header_states_no_duration_needs_max_duration(folder: Path) -> None:
    write_source(folder / "talk.mkv", 9, audio_s=2.0)  # Matroska: no stream durations in its header
    found = _problems(folder, [{**A2VID, "audio_conditioning": {"path": "talk.mkv"}}])
    assert "set max_duration: 0.375" in found["a", "audio_conditioning.max_duration"]
    [job] = _load(folder, [{**A2VID, "audio_conditioning": {"path": "talk.mkv", "max_duration": 1}}])
    assert job.audio_conditioning.channels == 1


RETAKE = {"name": "r", "pipeline": "retake", "upscale": {"spatial": False}}


def _retake(path: str, **fields: object) -> dict:
    return {**RETAKE, "retake": {"path": path, "start": 0.1, "end": 0.2}, **fields}


def test_a_23_976_source_matches_its_rate_written_as_a_decimal_and_keeps_the_rate_as_written(
    folder: Path,
) -> None:
    write_source(folder / "ntsc.mp4", 17, Fraction(24000, 1001))
    for written in (23.976, 23.98, 24000 / 1001):
        [job] = _load(folder, [_retake("ntsc.mp4", num_frames=17, frame_rate=written)])
        assert job.frame_rate == written  # as written: the id is what it was for this value
    found = _problems(folder, [_retake("ntsc.mp4", num_frames=17)])  # frame_rate 24 by default
    assert "(24000/1001 = 23.976 fps), got 24: set frame_rate: 23.976" in found["r", "frame_rate"]


def test_a_source_that_is_not_8k_plus_1_frames_is_explained_once(folder: Path) -> None:
    write_source(folder / "ten.mp4", 10)
    for num_frames in (10, 9, 17):
        found = _problems(folder, [_retake("ten.mp4", num_frames=num_frames)])
        assert list(found) == [("r", "retake.path")], found
        assert (
            "has 10 frames" in found["r", "retake.path"]
            and "cut the source to 9 frames" in (found["r", "retake.path"])
        )


def test_a_truncated_source_is_refused_without_decoding_it(folder: Path) -> None:
    whole = write_source(folder / "whole.mp4", 17).read_bytes()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    found = _problems(folder, [_retake("cut.mp4", num_frames=17)])
    assert "is truncated: its header states 17 frames but the file holds" in found["r", "retake.path"]


def test_sound_a_retake_keeps_must_be_in_its_source(folder: Path) -> None:
    write_source(folder / "mute.mp4", 17)
    keep = {"path": "mute.mp4", "start": 0.1, "end": 0.2, "regenerate_audio": False}
    found = _problems(folder, [{**RETAKE, "num_frames": 17, "retake": keep}])
    assert "no audio stream, so there is no sound to keep" in found["r", "retake.regenerate_audio"]
    assert _load(folder, [_retake("mute.mp4", num_frames=17)])  # regenerated: the whole track is new
    write_source(folder / "short_sound.mp4", 17, audio_s=0.3)  # 17 frames at 24 fps: 0.708 s
    found = _problems(folder, [_retake("short_sound.mp4", num_frames=17)])
    assert "its audio stream ends at 0.3" in found["r", "retake.path"]
    covered = {"path": "short_sound.mp4", "start": 0.2, "end": 17 / 24}
    assert _load(folder, [{**RETAKE, "num_frames": 17, "retake": covered}])


def test_a_yaml_key_that_is_a_list_is_refused_cleanly(folder: Path) -> None:
    (folder / "m.yaml").write_text("jobs:\n  - prompt: a\n    ? [a, b]\n    : 1\n")
    with pytest.raises(ManifestError, match="a mapping key must be a plain value"):
        manifest_jobs(folder / "m.yaml")


def test_a_folder_or_a_fifo_is_refused_by_what_it_is(folder: Path) -> None:
    (folder / "dir.yaml").mkdir()
    os.mkfifo(folder / "pipe.yaml")
    with pytest.raises(ManifestError, match="is a folder, not a manifest file") as caught:
        resolve_manifest_path(str(folder / "dir.yaml"), folder)
    assert "did you mean" not in str(caught.value)
    with pytest.raises(ManifestError, match=r"is a named pipe \(FIFO\)"):
        resolve_manifest_path(str(folder / "pipe.yaml"), folder)
    with pytest.raises(ManifestError, match=r"is a named pipe \(FIFO\)"):  # never opened for reading
        manifest_jobs(folder / "pipe.yaml")
    (folder / "lib" / "examples").mkdir(parents=True)
    (folder / "lib" / "examples" / "sweep.yaml").write_text("jobs: []\n")
    with pytest.raises(ManifestError, match=r"is a folder of manifests .*pick one: examples/sweep"):
        resolve_manifest_path("examples", folder / "lib")


def test_max_jobs_below_one_is_a_settings_problem_not_a_sweep_field(folder: Path) -> None:
    app = AppConfig()
    app.limits.max_jobs = 0
    assert any(p.startswith("limits.max_jobs must be >= 1") for p in settings_problems(app, folder))
