"""Denoising steps reported from inside the official loops, on the tiny real model: exactly the recipe's
steps per stage for every sampler, outputs bit-identical with and without a listener, and every window of a
job (chunks included) reaching the driver's progress through the local runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltx2_batch.backends.base import RenderBackend, RenderRequest, RenderResult, StepReportingBackend
from ltx2_batch.cli import run
from ltx2_batch.core.jobs import AudioCondition, PipelineKind, RenderJob, RetakeSpec, UpscaleSpec
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.run.progress import Progress
from tests.conftest import REPO_ROOT, TINY_PROMPT, AppFactory, tiny_job, write_manifest

pytestmark = pytest.mark.slow
PROMPT = TINY_PROMPT


@pytest.fixture
def backend(tiny_fp32: RenderBackend) -> RenderBackend:
    """The session's float32 tiny backend (tests/fixtures/backends.py)."""
    return tiny_fp32


def _counted(backend: RenderBackend, job: RenderJob) -> tuple[RenderResult, list[StepEvent]]:
    assert isinstance(backend, StepReportingBackend)
    events: list[StepEvent] = []
    with backend.reporting_steps(events.append):
        result = backend.render(RenderRequest(job=job))
    return result, events


def _per_stage(events: list[StepEvent]) -> dict[int, list[int]]:
    stages: dict[int, list[int]] = {}
    for event in events:
        stages.setdefault(event.stage, []).append(event.done)
    return stages


@pytest.mark.parametrize(
    ("kind", "upscale", "size", "expected"),
    [
        (PipelineKind.DISTILLED, True, 64, {1: 8, 2: 3}),  # the 8 distilled sigmas, then the 3 of stage 2
        (PipelineKind.DISTILLED, False, 32, {1: 8}),
        (PipelineKind.TI2VID, True, 64, {1: 2, 2: 3}),  # num_inference_steps=2 over the LTX2 schedule
        (PipelineKind.HQ, True, 64, {1: 2, 2: 3}),  # the res_2s loop: two model calls per step, one tick
    ],
    ids=["distilled", "distilled-one-stage", "ti2vid", "hq-res2s"],
)
def test_the_listener_sees_exactly_the_recipes_steps(
    backend: RenderBackend, kind: PipelineKind, upscale: bool, size: int, expected: dict[int, int]
) -> None:
    job = tiny_job(pipeline=kind, upscale=UpscaleSpec(spatial=upscale), width=size, height=size)
    result, events = _counted(backend, job)
    recipe = result.info["recipe"]
    assert {1: recipe["stage_1_steps"], 2: recipe["stage_2_steps"]} == {1: expected[1], 2: expected.get(2, 0)}
    # every step once and in order, from 0 done to all done, in each stage
    assert _per_stage(events) == {stage: list(range(n + 1)) for stage, n in expected.items()}
    stages = len(expected)
    assert {(e.stage, e.stages, e.steps) for e in events} == {(s, stages, n) for s, n in expected.items()}


@pytest.mark.parametrize("kind", [PipelineKind.DISTILLED, PipelineKind.HQ], ids=["euler", "res2s"])
def test_counting_steps_leaves_the_output_bit_identical(backend: RenderBackend, kind: PipelineKind) -> None:
    job = tiny_job(pipeline=kind, seed=9)
    plain = backend.render(RenderRequest(job=job))
    counted, events = _counted(backend, job)
    assert events
    assert np.array_equal(plain.frames, counted.frames)
    assert np.array_equal(plain.audio, counted.audio)
    for name in ("stage1_latent", "final_latent", "audio_latent"):
        assert torch.equal(getattr(plain, name), getattr(counted, name)), name


@pytest.mark.parametrize(
    ("kind", "guided", "expected"),
    [
        (PipelineKind.A2VID, True, {1: 2, 2: 3}),  # video-only stages (denoise_video_only), audio frozen
        (PipelineKind.RETAKE, False, {1: 8}),  # one stage from the source's latents, distilled sigmas
        (PipelineKind.RETAKE, True, {1: 2}),
    ],
    ids=["a2vid", "retake-distilled", "retake-guided"],
)
def test_audio_driven_and_retake_stages_count_their_steps_and_stay_bit_identical(
    backend: RenderBackend, tmp_path: Path, kind: PipelineKind, guided: bool, expected: dict[int, int]
) -> None:
    from tests.integration.test_a2vid import write_wav
    from tests.integration.test_retake import write_source

    if kind is PipelineKind.A2VID:
        job = tiny_job(
            pipeline=kind, audio_conditioning=AudioCondition(str(write_wav(tmp_path / "beat.wav")))
        )
    else:
        source = write_source(tmp_path / "source.mp4")
        retake = RetakeSpec(str(source), start_s=0.1, end_s=0.3, guided=guided)
        job = tiny_job(pipeline=kind, upscale=UpscaleSpec(spatial=False), retake=retake)
    plain = backend.render(RenderRequest(job=job))
    counted, events = _counted(backend, job)
    assert _per_stage(events) == {stage: list(range(n + 1)) for stage, n in expected.items()}
    assert counted.info["recipe"]["stage_1_steps"] == expected[1]
    assert np.array_equal(plain.frames, counted.frames)
    assert torch.equal(plain.final_latent, counted.final_latent)


def test_no_listener_after_the_block(backend: RenderBackend) -> None:
    _counted(backend, tiny_job())
    events: list[StepEvent] = []
    with backend.reporting_steps(events.append):  # type: ignore[attr-defined]
        pass
    backend.render(RenderRequest(job=tiny_job()))
    assert events == []


CHAINED = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: long_walk, prompt: "A long walk on the beach.", seed: 2, num_frames: 145}
"""


def test_every_window_of_every_job_reaches_the_progress(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the executor's throttle and the local runner's events: each stage's end always arrives, so a
    chained job of 2 chunks shows 2 x 2 finished stages."""
    seen: list[tuple[str, StepEvent]] = []
    real = Progress.job_stepped

    def recording(self: Progress, name: str, step: StepEvent) -> None:
        seen.append((name, step))
        real(self, name, step)

    monkeypatch.setattr(Progress, "job_stepped", recording)
    manifest = write_manifest(tmp_path / "m", CHAINED)
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    ends = [(name, e.stage, e.steps) for name, e in seen if e.stage_finished]
    assert ends == [("cat", 1, 8), ("cat", 2, 3), *[("long_walk", 1, 8), ("long_walk", 2, 3)] * 2]


@pytest.mark.parametrize("kind", [PipelineKind.DISTILLED, PipelineKind.HQ], ids=["euler", "res2s"])
def test_a_stop_at_a_step_cancels_the_render_and_leaves_the_backend_as_it_was(
    backend: RenderBackend, tmp_path: Path, kind: PipelineKind
) -> None:
    """The executor's cancel point: a stop seen at a step boundary raises JobCancelledError inside the
    official loop; the job is reported cancelled with nothing written, and the same warm backend then renders
    the job bit-identically to a render never interrupted (no listener, stage or model state left over)."""
    from ltx2_batch.core.outcome import OutcomeStatus, WorkerIdentity
    from ltx2_batch.media.probe import VideoCount
    from ltx2_batch.storage.layout import OutputLayout
    from ltx2_batch.worker.executor import JobExecutor, RunOutput
    from ltx2_batch.worker.job_files import JobFiles

    job = tiny_job(pipeline=kind, seed=11)
    plain = backend.render(RenderRequest(job=job))
    seen: list[StepEvent] = []
    files = JobFiles(OutputLayout(tmp_path), {}, video_crf=18, thumbnail_width=32, count=VideoCount.packets)
    executor = JobExecutor(backend, WorkerIdentity("w", "here"))
    outcome = executor.execute(
        job,
        RunOutput(files),
        should_stop=lambda: bool(seen),  # from the step after the first one sent
        on_step=lambda _job, step: seen.append(step),
    )
    executor.shutdown()  # the module's backend stays open
    assert outcome.status is OutcomeStatus.CANCELLED
    assert outcome.error is not None and outcome.error.startswith("cancelled at step 1/")
    assert not list(tmp_path.rglob("*.mp4"))
    again = backend.render(RenderRequest(job=job))
    assert np.array_equal(plain.frames, again.frames)
    assert torch.equal(plain.final_latent, again.final_latent)
