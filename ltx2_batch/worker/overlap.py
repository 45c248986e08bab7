"""What a worker overlaps with the next job's render, and the one-slot queue that runs it.

`output.overlap` (config.OverlapMode) is settled per worker from its device (`settle`): on `auto` a CUDA
worker writes job n's files on a background thread while job n+1 renders, and decodes job n there too when
the previous job's timings say that shortens the cycle; a CPU worker overlaps nothing (its render already
uses every core). `encode` and `decode` force those on any device; `off` forces neither. The files are the
same bytes whichever is chosen: the same functions run on the same arrays, only on another thread.
`EncodeQueue` is that thread: one job in flight, the next submit waits for it.
Must not: render, write files itself, or import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum
from typing import TypeVar

from ltx2_batch.config import OverlapMode

T = TypeVar("T")


class Overlap(Enum):
    """A worker's settled overlap behaviour."""

    OFF = "off"  # everything in line
    ENCODE = "encode"  # job n's MP4/thumbnail/sidecar beside job n+1's render
    DECODE = "decode"  # ... and job n's VAE/audio decode there too, whenever the backend allows it
    ADAPTIVE = "adaptive"  # ENCODE, plus the decode there when the last job's timings say it is shorter

    @property
    def encodes(self) -> bool:
        """A job's files are written on the encode thread beside the next render."""
        return self is not Overlap.OFF

    @property
    def decodes(self) -> bool:
        """A job's decode may also run there (always for DECODE, when it pays for ADAPTIVE)."""
        return self in (Overlap.DECODE, Overlap.ADAPTIVE)


def settle(mode: OverlapMode, cuda: bool) -> Overlap:
    """The behaviour `mode` means for a worker that renders on CUDA (or not)."""
    if mode is OverlapMode.auto:
        return Overlap.ADAPTIVE if cuda else Overlap.OFF
    return Overlap(mode.value)


def overlapped_decode_is_shorter(denoise: float, decode: float, encode: float) -> bool:
    """Steady-state cycle with the decode on the encode thread, max(denoise, decode + encode), against the
    decode in line, max(denoise + decode, encode): e.g. a GPU decode of 1.6 s beside a 9.9 s denoise and a
    7.5 s CPU encode (H200, 1536x1024x121) gains; beside a 3 s denoise and a 12 s encode it loses."""
    return max(denoise, decode + encode) <= max(denoise + decode, encode)


class EncodeQueue:
    """One background thread with at most one task in flight (started on first use)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[object] | None = None

    def submit(self, task: Callable[[], T]) -> Future[T]:
        """Wait for the task in flight, then start `task` on the thread."""
        self.drain()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        future = self._pool.submit(task)
        self._pending = future  # type: ignore[assignment]  # only waited on, its value is the caller's
        return future

    def drain(self) -> None:
        """Wait until the task in flight (if any) has finished."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def shutdown(self) -> None:
        """Finish the task in flight and stop the thread (idempotent)."""
        self.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def completed(value: T) -> Future[T]:
    """A future that already holds `value` (what an in-line job returns)."""
    future: Future[T] = Future()
    future.set_result(value)
    return future
