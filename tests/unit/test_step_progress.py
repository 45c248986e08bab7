"""Step counting and thinning as pure logic: the call sequences the official loops make, and the throttle."""

from __future__ import annotations

import pytest

from ltx2_batch.core.step_events import StageSteps, StepEvent, StepThrottle, is_due, steps_done


def _euler_calls(steps: int) -> list[int]:
    """The step indices euler_denoising_loop passes to its denoising function: one call per step."""
    return list(range(steps))


def _res2s_calls(steps: int) -> list[int]:
    """res2s_audio_video_denoising_loop: per step the step's own index, then a substep at index 0; after the
    last step a clean-up call at index `steps` (its schedule ends at sigma 0)."""
    return [i for k in range(steps) for i in (k, 0)] + [steps]


@pytest.mark.parametrize("calls", [_euler_calls, _res2s_calls], ids=["euler", "res2s"])
@pytest.mark.parametrize("steps", [1, 2, 8, 30])
def test_a_stage_counts_each_step_once_whatever_the_sampler(calls: object, steps: int) -> None:
    events: list[StepEvent] = []
    counter = StageSteps(events.append, stages=2)
    for stage_steps in (steps, 3):
        counter.begin(stage_steps)
        for index in calls(stage_steps):  # type: ignore[operator]
            counter.at(index)
        counter.end()
    first = [e.done for e in events if e.stage == 1]
    assert first == list(range(steps + 1))  # 0, 1, ..., steps: every step once, in order, none past the end
    assert [e.done for e in events if e.stage == 2] == [0, 1, 2, 3]
    assert {(e.stage, e.stages, e.steps) for e in events} == {(1, 2, steps), (2, 2, 3)}
    assert [e.stage_finished for e in events].count(True) == 2


def test_steps_done_moves_only_forward_and_stops_at_the_end() -> None:
    assert steps_done(0, 0, 8) is None  # the first call: nothing finished yet, already reported by begin
    assert steps_done(3, 2, 8) == 3
    assert steps_done(0, 3, 8) is None  # a res_2s substep call
    assert steps_done(9, 7, 8) == 8  # a clean-up call past the last step
    assert steps_done(8, 8, 8) is None


def test_a_stage_past_the_declared_count_raises_the_count() -> None:
    events: list[StepEvent] = []
    counter = StageSteps(events.append, stages=1)
    counter.begin(2)
    counter.begin(2)
    assert events[-1] == StepEvent(stage=2, stages=2, done=0, steps=2)


def test_is_due_sends_the_first_event_each_stage_end_and_then_one_per_interval() -> None:
    mid, end = StepEvent(1, 2, 3, 8), StepEvent(1, 2, 8, 8)
    assert is_due(mid, None, 5.0, 0.1)
    assert not is_due(mid, 5.0, 5.05, 0.1)
    assert is_due(mid, 5.0, 5.125, 0.1)
    assert is_due(end, 5.0, 5.01, 0.1)  # a stage's end is never dropped: its bar shows it complete


def test_throttle_sends_at_most_one_event_per_interval_between_stage_ends() -> None:
    """200 steps 1 ms apart (the tiny model): 0.2 s of steps at 10 events a second."""
    now = [0.0]
    sent: list[StepEvent] = []
    throttle = StepThrottle(sent.append, min_interval_s=0.1, clock=lambda: now[0])
    counter = StageSteps(throttle, stages=1)
    counter.begin(200)
    for index in range(200):
        now[0] = index / 1000
        counter.at(index)
    counter.end()
    assert [e.done for e in sent] == [0, 100, 200]  # the first, one per 0.1 s, and the stage's end
