"""Driver-side progress: a line per job and per chunk with an ETA, and the end-of-run summary table.

Lives in the driver only (workers report events, they never draw). Writes plain lines, not a curses bar,
so it reads the same in a terminal, a CI log and a Slurm output file.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


@dataclass
class RunStats:
    """Final per-job states and render time; the summary table is built from this."""

    total: int = 0
    skipped: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    render_s: float = 0.0
    frames: int = 0
    wall_s: float = 0.0

    @property
    def failed(self) -> int:
        return self.statuses["failed"]

    @property
    def cancelled(self) -> int:
        return self.statuses["cancelled"]

    @property
    def done(self) -> int:
        return self.statuses["done"]

    @property
    def not_started(self) -> int:
        return self.total - self.skipped - sum(self.statuses.values())


class Progress:
    def __init__(self, total_jobs: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._total = total_jobs
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._finished = 0
        self._started_at = time.monotonic()

    def _write(self, text: str) -> None:
        if self._enabled:
            print(text, file=self._stream, flush=True)

    def _prefix(self) -> str:
        width = len(str(self._total))
        return f"[{self._finished:>{width}}/{self._total}]"

    def _eta(self) -> str:
        if not self._finished:
            return "ETA --"
        elapsed = time.monotonic() - self._started_at
        remaining = elapsed / self._finished * (self._total - self._finished)
        return f"ETA {_fmt_s(remaining)}"

    def job_started(self, name: str, worker: str, attempt: int) -> None:
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        self._write(f"{self._prefix()} start  {name} on {worker}{retry}")

    def chunk_finished(self, name: str, index: int, count: int, seconds: float, resumed: bool) -> None:
        how = "resumed" if resumed else f"{seconds:.1f}s"
        self._write(f"{self._prefix()}   chunk {index + 1}/{count} of {name} ({how})")

    def job_finished(self, name: str, status: str, seconds: float, error: str | None = None) -> None:
        if status != "retried":
            self._finished += 1
        detail = f" - {error.splitlines()[0][:160]}" if error and status != "done" else ""
        self._write(f"{self._prefix()} {status:<9}{name} ({_fmt_s(seconds)}) {self._eta()}{detail}")


def summary_table(stats: RunStats) -> str:
    rows = [
        ("jobs", str(stats.total)),
        ("done", str(stats.done)),
        ("skipped (already done)", str(stats.skipped)),
        ("failed", str(stats.failed)),
        ("cancelled", str(stats.cancelled)),
        ("not started", str(stats.not_started)),
        ("render time", _fmt_s(stats.render_s)),
        ("wall time", _fmt_s(stats.wall_s)),
        ("frames written", str(stats.frames)),
        ("throughput", f"{stats.done / stats.wall_s * 3600:.1f} clips/h" if stats.wall_s > 0 else "-"),
    ]
    width = max(len(k) for k, _ in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * 14 + "+"
    body = [f"| {k:<{width}} | {v:>12} |" for k, v in rows]
    return "\n".join([line, *body, line])
