"""`model=fake`: a stand-in model that renders without weights, torch or a GPU, to test the plumbing.

What it is for: the driver, the runners (local, Ray, a cluster), the ledger, resume, storage and exports run
at full speed on any machine: in the tests' orchestration tier, and as a dry run of a cluster or a bucket
before any weights are downloaded. What it is not: a model. Its clips are synthetic and say so (sidecar
`backend.weights: fake`), and its fingerprint differs from every real model's, so its job ids never match a
real render's. Every behaviour is also tested on the tiny real model; this backend only makes the many
orchestration tests cheap.

What it renders, deterministically per job:
- frames: each frame spells its position in the finished video (media/probe.py's frame-index pattern), with
  a tint of its own per job, so a stitched, resumed or exported file can be checked frame by frame;
- sound: a stereo sine with the job's own pitch, at the family's rate (24 kHz LTX-2, 48 kHz LTX-2.3);
- latents: numpy arrays whose first channel holds, per latent frame, the position of its last pixel frame in
  the finished video, so the chaining handoff carries positions across chunks as the real latents carry
  content (chunk i starts where the handed-off tail of chunk i-1 says).

Tags steer it, for tests of the failure paths (tags are not part of a job's identity):
`fake_render_s: "2.5"` makes a render take that long (a job to cancel or kill mid-render, with step events
along the way), in `fake_steps: "N"` steps (8 unless set: a long render that must stop soon at a step takes
many); `fake_fail: "why"` makes it raise (an application failure, recorded `failed`);
`fake_frames: "N"` returns N frames whatever the job asks (a model that comes up short: never recorded done).
Must not: import torch or ltx (tests/unit/test_import_graph.py checks it), or touch files.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ltx2_batch.backends.base import RenderRequest, RenderResult
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.families import ModelFamily
from ltx2_batch.core.families import spec as family_spec
from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob
from ltx2_batch.core.step_events import StageSteps, StepListener
from ltx2_batch.errors import FatalBackendError
from ltx2_batch.media.probe import frame_index_pattern

TEMPORAL_SCALE = 8  # pixel frames per latent frame after the first, as the LTX-2 VAE
AUDIO_LATENTS_PER_SECOND = 25.0  # as ltx-core's audio latent grid
FAKE_STEPS = 8  # denoising steps a fake render reports (the distilled recipe's stage 1)
_SMALLEST = 16  # the frame-index pattern's 4x4 cells need 16x16 pixels
_TINT = 20  # the largest per-job shift of the pattern's levels that decode_frame_index still reads


def fake_fingerprint(cfg: ModelConfig) -> str:
    """Job ids on the fake model: apart from every real model's, distinct per family and seed."""
    payload = f"fake|{cfg.family.value}|{cfg.seed}".encode()
    return "fake-" + hashlib.sha256(payload).hexdigest()[:11]


@dataclass
class FakeBackend:
    """The RenderBackend protocol (and step reporting) over numpy; `builds` counts model "loads", as a warm
    pool's tests count real builds."""

    family: ModelFamily = ModelFamily.ltx2
    builds: int = 0
    device: str = "cpu"
    _warm: tuple[PipelineKind, tuple[LoraSpec, ...]] | None = None
    _listener: StepListener | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> FakeBackend:
        """The fake model for `cfg`'s family (its sample rate and window); the rest of `cfg` is ignored."""
        return cls(family=cfg.family)

    @property
    def temporal_scale(self) -> int:
        """8 pixel frames per latent frame, as the LTX-2 VAE."""
        return TEMPORAL_SCALE

    @property
    def audio_latents_per_second(self) -> float:
        """25 audio latent frames per second, as ltx-core's audio latent grid."""
        return AUDIO_LATENTS_PER_SECOND

    def prepare(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> float:
        """A pipeline switch counts as a build; the same pipeline again is warm (0.0 s)."""
        if self._warm == (pipeline, loras):
            return 0.0
        self._warm = (pipeline, loras)
        self.builds += 1
        return 0.0

    def check(self, job: RenderJob, *, one_window: bool = True) -> None:
        """Sizes the frame-index pattern can spell and windows the family takes (8k+1 frames)."""
        if min(job.width, job.height) < _SMALLEST or job.width % 2 or job.height % 2:
            raise FatalBackendError(
                f"the fake model renders even sizes from 16x16, got {job.width}x{job.height}"
            )
        window = family_spec(self.family).window_frames
        if one_window and ((job.num_frames - 1) % TEMPORAL_SCALE or not 1 <= job.num_frames <= window):
            raise FatalBackendError(
                f"num_frames={job.num_frames}: one window takes 8k+1 frames, at most {window}"
            )

    @contextlib.contextmanager
    def reporting_steps(self, listener: StepListener) -> Iterator[None]:
        """Report the fake denoising steps of every render inside the block to `listener`."""
        previous, self._listener = self._listener, listener
        try:
            yield
        finally:
            self._listener = previous

    def render(self, request: RenderRequest) -> RenderResult:
        """Frames, sound and latents of one window (see the module docstring), after the job's tags say."""
        job = request.job
        self.check(job)
        started = time.perf_counter()
        tags = dict(job.tags)
        self._wait(float(tags.get("fake_render_s", 0.0)), int(tags.get("fake_steps", FAKE_STEPS)))
        if "fake_fail" in tags:
            raise RuntimeError(f"fake model asked to fail: {tags['fake_fail']}")
        handoff = request.handoff
        offset = int(np.asarray(handoff.stage1)[0, 0, 0, 0, 0]) if handoff is not None else 0
        frames, rate = int(tags.get("fake_frames", job.output_frames)), job.output_frame_rate
        voice = _job_number(job)
        pictures = np.stack([_picture(offset + i, job, voice) for i in range(frames)])
        sample_rate = family_spec(self.family).audio_sample_rate
        latent = _latent(job, offset, voice)
        audio = _sound(frames / rate, sample_rate, voice) if job.audio else None
        return RenderResult(
            frames=pictures,
            frame_rate=rate,
            audio=audio,
            sample_rate=sample_rate if job.audio else None,
            stage1_latent=latent,
            final_latent=latent.copy(),
            audio_latent=_audio_latent(job.num_frames / job.frame_rate, voice),
            timings={"total": time.perf_counter() - started},
            info=_info(job, self.family),
        )

    def _wait(self, seconds: float, count: int) -> None:
        """Take `seconds`, reporting `count` denoising steps along the way (when listened to)."""
        steps = StageSteps(self._listener, 1) if self._listener is not None else None
        if steps is not None:
            steps.begin(count)
        for index in range(count):
            if steps is not None:
                steps.at(index)
            time.sleep(seconds / count)
        if steps is not None:
            steps.end()

    def close(self) -> None:
        """Forget the warm pipeline: the next `prepare` counts as a build."""
        self._warm = None


def _job_number(job: RenderJob) -> int:
    """A number of this job's own (from what it renders, seed included): its tint and pitch."""
    return int(
        hashlib.sha256(f"{job.prompt}|{job.seed}|{job.width}x{job.height}".encode()).hexdigest()[:8], 16
    )


def _picture(position: int, job: RenderJob, voice: int) -> np.ndarray:
    tint = voice % (2 * _TINT + 1) - _TINT
    frame = frame_index_pattern(position, job.height, job.width).astype(np.int16) + tint
    return frame.clip(0, 255).astype(np.uint8)


def _latent(job: RenderJob, offset: int, voice: int) -> np.ndarray:
    """[1, 2, T, 1, 1]: channel 0 the position of each latent frame's last pixel frame, channel 1 noise."""
    count = (job.num_frames - 1) // TEMPORAL_SCALE + 1
    latent = np.empty((1, 2, count, 1, 1), dtype=np.float32)
    latent[0, 0, :, 0, 0] = offset + TEMPORAL_SCALE * np.arange(count)
    latent[0, 1, :, 0, 0] = np.random.default_rng(voice).standard_normal(count)
    return latent


def _audio_latent(duration_s: float, voice: int) -> np.ndarray:
    frames = max(1, round(duration_s * AUDIO_LATENTS_PER_SECOND))
    return np.random.default_rng(voice + 1).standard_normal((1, 2, frames, 4)).astype(np.float32)


def _sound(duration_s: float, sample_rate: int, voice: int) -> np.ndarray:
    """Stereo float32 [2, S]: a quiet sine at the job's own pitch."""
    t = np.arange(round(duration_s * sample_rate), dtype=np.float64) / sample_rate
    wave = 0.1 * np.sin(2 * np.pi * (220 + voice % 440) * t)
    return np.stack([wave, wave]).astype(np.float32)


def _info(job: RenderJob, family: ModelFamily) -> dict[str, object]:
    return {
        "device": "cpu",
        "dtype": "float32",
        "pipeline": job.pipeline.value,
        "prompt": job.prompt,
        "weights": "fake",
        "model_family": family.value,
        "model_version": None,
        "checkpoint_kind": "distilled",
        "recipe": {"stage_1_steps": FAKE_STEPS, "stage_2_steps": 0, "guidance": False},
        "temporal_upsampled": job.upscale.temporal,
        "audio_origin": "generated" if job.audio else None,  # its own tone, whatever the job's inputs
    }
