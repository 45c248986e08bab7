"""The fake backend (backends/fake.py) keeps its promises: deterministic per job, frames that spell their
position in the finished video, latents that carry positions across the chaining handoff, sound as long as
the picture at the family's rate, tags that slow a render (with step events) or fail it, and the size and
window checks. Pure numpy: it runs in the unit tier (whose guard refuses torch)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from ltx2_batch.backends.base import LatentHandoff, RenderRequest, RenderResult
from ltx2_batch.backends.fake import FAKE_STEPS, TEMPORAL_SCALE, FakeBackend, fake_fingerprint
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.families import ModelFamily
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.errors import FatalBackendError
from ltx2_batch.media.probe import decode_frame_index
from tests.conftest import tiny_job


def _job(**kw: object) -> RenderJob:
    return tiny_job(**{"width": 32, "height": 32, "upscale": UpscaleSpec(spatial=False), **kw})


def _render(
    job: RenderJob, backend: FakeBackend | None = None, handoff: LatentHandoff | None = None
) -> RenderResult:
    return (backend or FakeBackend()).render(RenderRequest(job=job, handoff=handoff))


def test_a_job_renders_the_same_every_time_and_another_job_differently() -> None:
    first, again, other = _render(_job()), _render(_job()), _render(_job(seed=4))
    for field in ("frames", "audio", "stage1_latent", "final_latent", "audio_latent"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.frames, other.frames)  # its own tint
    assert not np.array_equal(first.audio, other.audio)  # its own pitch
    assert [decode_frame_index(f) for f in other.frames] == [decode_frame_index(f) for f in first.frames]


def test_frames_spell_their_position_and_latents_carry_it_across_a_handoff() -> None:
    job = _job(num_frames=25)
    first = _render(job)
    assert first.frames.shape == (25, 32, 32, 3) and first.frames.dtype == np.uint8
    assert [decode_frame_index(f) for f in first.frames] == list(range(25))
    positions = first.stage1_latent[0, 0, :, 0, 0]
    assert positions.tolist() == [
        TEMPORAL_SCALE * i for i in range(4)
    ]  # each latent frame's last pixel frame
    k = 2  # hand the last two latent frames on: the next window starts at the first one's position
    handoff = LatentHandoff(stage1=first.stage1_latent[:, :, -k:])
    second = _render(job, handoff=handoff)
    start = int(positions[-k])
    assert [decode_frame_index(f) for f in second.frames] == list(range(start, start + 25))
    np.testing.assert_array_equal(second.stage1_latent[:, 0, :k], first.stage1_latent[:, 0, -k:])


@pytest.mark.parametrize(("family", "rate"), [(ModelFamily.ltx2, 24_000), (ModelFamily.ltx23, 48_000)])
def test_sound_lasts_as_long_as_the_picture_at_the_familys_rate(family: ModelFamily, rate: int) -> None:
    result = _render(_job(num_frames=17), FakeBackend(family=family))
    assert result.sample_rate == rate and result.audio.shape == (2, round(17 / 24 * rate))
    assert result.audio.dtype == np.float32 and np.abs(result.audio).max() <= 0.1 + 1e-6
    silent = _render(_job(audio=False))
    assert silent.audio is None and silent.sample_rate is None


def test_a_temporal_upscale_doubles_frames_and_rate() -> None:
    result = _render(_job(upscale=UpscaleSpec(spatial=False, temporal=True)))
    assert result.frames.shape[0] == 17 and result.frame_rate == 48.0
    assert [decode_frame_index(f) for f in result.frames] == list(range(17))
    assert result.info["temporal_upsampled"] is True and result.info["weights"] == "fake"


def test_a_still_is_one_frame() -> None:
    result = _render(_job(num_frames=1, mode=RenderMode.IMAGE))
    assert result.frames.shape == (1, 32, 32, 3) and decode_frame_index(result.frames[0]) == 0


def test_the_slow_tag_takes_its_time_and_reports_its_steps() -> None:
    backend, events = FakeBackend(), []
    job = dataclasses.replace(_job(), tags=(("fake_render_s", "0.2"),))
    started = time.perf_counter()
    with backend.reporting_steps(events.append):
        _render(job, backend)
    assert time.perf_counter() - started >= 0.2
    assert events[0] == StepEvent(stage=1, stages=1, done=0, steps=FAKE_STEPS)
    assert events[-1] == StepEvent(stage=1, stages=1, done=FAKE_STEPS, steps=FAKE_STEPS)
    assert [e.done for e in events] == sorted(e.done for e in events)
    _render(_job(), backend)  # nobody listening: no events, no error
    assert events[-1].done == FAKE_STEPS


def test_the_fail_tag_raises_an_application_error() -> None:
    job = dataclasses.replace(_job(), tags=(("fake_fail", "out of luck"),))
    with pytest.raises(RuntimeError, match="fake model asked to fail: out of luck"):
        _render(job)


def test_sizes_and_windows_it_cannot_spell_are_refused() -> None:
    backend = FakeBackend()
    for width, height in ((8, 32), (32, 15), (33, 32)):
        with pytest.raises(FatalBackendError, match="even sizes from 16x16"):
            backend.check(_job(width=width, height=height))
    with pytest.raises(FatalBackendError, match="8k\\+1 frames, at most 121"):
        backend.check(_job(num_frames=10))
    with pytest.raises(FatalBackendError, match="at most 121"):
        backend.check(_job(num_frames=129))
    backend.check(_job(num_frames=129), one_window=False)  # a chained job's whole length
    FakeBackend(family=ModelFamily.ltx23).check(_job(num_frames=129))  # LTX-2.3's window is 481


def test_a_pipeline_switch_counts_as_a_build() -> None:
    backend = FakeBackend()
    assert backend.prepare(PipelineKind.DISTILLED, ()) == 0.0 and backend.builds == 1
    backend.prepare(PipelineKind.DISTILLED, ())
    assert backend.builds == 1  # warm
    backend.prepare(PipelineKind.TI2VID, ())
    assert backend.builds == 2
    backend.close()
    backend.prepare(PipelineKind.TI2VID, ())
    assert backend.builds == 3  # closed: cold again


def test_its_job_ids_never_match_a_real_models() -> None:
    fake = fake_fingerprint(ModelConfig(name="fake"))
    assert fake.startswith("fake-")
    assert fake != fake_fingerprint(ModelConfig(name="fake", seed=1))
    assert fake != fake_fingerprint(ModelConfig(name="fake", family=ModelFamily.ltx23))
