"""Denoising-step progress of the job a worker is rendering: the event, how it is counted, how it is thinned.

Owns: `StepEvent` (the frozen value that travels from the backend's denoising loop to the driver's display),
`StageSteps` (counts one render's stages and steps from the step indices the official loop passes to its
denoising function), and `StepThrottle` (one event per interval, plus each stage's end, so a Ray worker does
not flood the driver's progress queue when the tiny model's steps take milliseconds). The decisions are pure
functions (`steps_done`, `is_due`); the two small classes only hold the last value each decision needs.
Must not: import torch, Ray or rich; draw anything (progress.py draws, in the driver); touch the tensors of
the loop it counts (outputs stay bitwise identical with and without a listener).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

STEP_EVENTS_PER_S = 10.0  # per worker: a bar redrawn ten times a second looks live, and costs nothing


@dataclass(frozen=True)
class StepEvent:
    """Where one render's denoising stands: `done` of `steps` in stage `stage` of `stages` (both 1-based).

    Two-stage recipes have two stages (the half-size stage 1, then the full-size refinement); the others
    one. A chained job renders one window per chunk, and each window starts again at stage 1."""

    stage: int
    stages: int
    done: int  # steps of this stage finished, 0..steps
    steps: int

    @property
    def stage_finished(self) -> bool:
        """Every step of this stage is done."""
        return self.done >= self.steps


StepListener = Callable[[StepEvent], None]


def steps_done(step_index: int, last_done: int, steps: int) -> int | None:
    """Steps finished when the loop calls its denoising function with `step_index`, or None when that is
    no news. The call for step k means steps 0..k-1 are finished; a sampler's extra calls (res_2s evaluates
    a substep at index 0, and a last clean-up at index `steps`) never move the count back or past the end."""
    done = min(max(step_index, 0), steps)
    return done if done > last_done else None


def is_due(event: StepEvent, last_sent_s: float | None, now_s: float, min_interval_s: float) -> bool:
    """Whether `event` goes out now: the first one, a stage's end (so a bar always shows its stage complete),
    and otherwise only once `min_interval_s` has passed since the last event sent."""
    if last_sent_s is None or event.stage_finished:
        return True
    return now_s - last_sent_s >= min_interval_s


class StageSteps:
    """One render's step counter: `begin(steps)` at each stage's loop, `at(step_index)` at each call of its
    denoising function, `end()` when the loop returns. Reports to `listener` only when the count moves."""

    def __init__(self, listener: StepListener, stages: int) -> None:
        self._listener = listener
        self._stages = stages
        self._stage = 0
        self._steps = 0
        self._done = 0

    def begin(self, steps: int) -> None:
        """A stage of `steps` steps starts (reported at 0 done); the stage count grows if more stages run."""
        self._stage += 1
        self._stages = max(self._stages, self._stage)
        self._steps, self._done = steps, 0
        self._report()

    def at(self, step_index: int) -> None:
        """The loop called its denoising function for `step_index`: report if that finished a step."""
        done = steps_done(step_index, self._done, self._steps)
        if done is not None:
            self._done = done
            self._report()

    def end(self) -> None:
        """The stage's loop returned: report it complete."""
        self.at(self._steps)

    def _report(self) -> None:
        self._listener(StepEvent(self._stage, self._stages, self._done, self._steps))


class StepThrottle:
    """A listener that passes events on to `send` as `is_due` allows (`clock`: seconds, monotonic)."""

    def __init__(
        self,
        send: StepListener,
        min_interval_s: float = 1.0 / STEP_EVENTS_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._last_sent_s: float | None = None

    def __call__(self, event: StepEvent) -> None:
        now = self._clock()
        if is_due(event, self._last_sent_s, now, self._min_interval_s):
            self._last_sent_s = now
            self._send(event)
