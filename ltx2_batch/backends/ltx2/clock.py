"""The phase clock of one render: wall seconds per named phase, added into the render's `timings`.

Owns: the phase names a RenderResult reports (every one present, 0.0 when a recipe skips it) and the CUDA
synchronization at phase edges, so GPU work lands in the phase that queued it.
Must not: wait for another stream than the current one (an overlapped decode runs on its own), or decide
which phases a recipe has (the recipes name them as they go).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

PHASES = ("text_encode", "stage1", "upsample", "stage2", "decode_video", "decode_audio")


class PhaseClock:
    """`with clock("stage1"): ...` adds the block's wall seconds to `timings["stage1"]` (errors too)."""

    def __init__(self, timings: dict[str, float], device: torch.device) -> None:
        self.timings = timings
        self._device = device
        self._cuda = device.type == "cuda"

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0

    def _sync(self) -> None:
        if self._cuda:  # this thread's stream only: an overlapped decode on the side stream is not waited for
            torch.cuda.current_stream(self._device).synchronize()


def with_every_phase(timings: dict[str, float]) -> dict[str, float]:
    """`timings` with each of PHASES present (0.0 for those the recipe did not run), as results report."""
    for phase in PHASES:
        timings.setdefault(phase, 0.0)
    return timings
