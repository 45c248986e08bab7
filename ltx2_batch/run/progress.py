"""Driver-side progress: live bars on a terminal, plain lines elsewhere, and the end-of-run summary table.

Lives in the driver only (workers report events, they never draw). On a terminal (the stream is a TTY) it
draws with `rich`: one bar for the run (jobs done/total, an ETA that leaves model loading out), one line per
job in flight with its elapsed time (a chained job's line is its chunk bar), and under each job line a bar
of the denoising steps of the stage it is in ("steps, stage 1/2  3/8"; it starts again at each stage and
each chunk). Anywhere else (a CI log, a Slurm output file, a pipe) it writes one plain line per job event
and per chunk, as before, and none per step, so logs stay short and greppable.
Step events come from the backend's loop through the executor (~10 a second plus stage ends, step_progress.py)
and, on Ray, the progress queue; a job's step bar goes when the job finishes.
Must not: touch the ledger or the runners; know anything about Ray or torch.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from ltx2_batch.core.step_events import StepEvent

_STATUS_WIDTH = len("cancelled")  # the longest job status: names start after it and one space
_MINUTE_S = 60


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < _MINUTE_S:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), _MINUTE_S)
    hours, minutes = divmod(minutes, 60)  # minutes per hour
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


FAILURES_SHOWN = 5


@dataclass
class RunStats:
    """Final per-job states and render time; the summary table is built from this."""

    total: int = 0
    skipped: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    render_s: float = 0.0
    frames: int = 0
    wall_s: float = 0.0
    # the first failures and why (bounded: a run of a million failing jobs keeps FAILURES_SHOWN of them), so
    # the summary says why even when no progress was drawn (progress=false, a log without lines)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def failed_because(self, name: str, error: str | None) -> None:
        """Keep why `name` failed (its error's first line, cut), for the first FAILURES_SHOWN failures."""
        if len(self.failures) < FAILURES_SHOWN:
            self.failures.append((name, (error or "no reason given").strip().splitlines()[0][:300]))

    @property
    def failed(self) -> int:
        """Jobs whose final state is failed."""
        return self.statuses["failed"]

    @property
    def cancelled(self) -> int:
        """Jobs whose final state is cancelled."""
        return self.statuses["cancelled"]

    @property
    def done(self) -> int:
        """Jobs rendered in this run (skipped ones not counted)."""
        return self.statuses["done"]

    @property
    def not_started(self) -> int:
        """Jobs that neither ran nor were skipped: what a stopped run left."""
        return self.total - self.skipped - sum(self.statuses.values())


@dataclass
class EtaClock:
    """Remaining time from job durations, leaving model loading out: a worker's first job carries its
    model build, so only its later jobs count. Until one such job has finished, the first jobs' durations
    stand in and the estimate is marked `~` (an upper bound)."""

    total: int
    finished: int = 0
    _workers: set[str] = field(default_factory=set)
    _warm: list[float] = field(default_factory=list)  # durations of jobs that found their worker warm
    _cold: list[float] = field(default_factory=list)  # a worker's first job: includes the model build
    _job_warm: dict[str, bool] = field(default_factory=dict)

    def started(self, name: str, worker: str) -> None:
        """Note whether `name` starts on a worker that ran a job before (warm: its time counts for ETAs)."""
        self._job_warm[name] = worker in self._workers
        self._workers.add(worker)

    def finished_job(self, name: str, seconds: float, counts: bool) -> None:
        """Keep `name`'s time as a warm or cold sample; a retried attempt (`counts` False) ends no job."""
        if counts:
            self.finished += 1
        (self._warm if self._job_warm.pop(name, False) else self._cold).append(seconds)

    def eta(self) -> str:
        """The mean job time times the jobs left, over the workers seen; `~` while only cold samples exist."""
        samples, mark = (self._warm, "") if self._warm else (self._cold, "~")
        remaining = self.total - self.finished
        if not samples or remaining <= 0:
            return "ETA --" if remaining > 0 else "ETA 0.0s"
        parallel = max(len(self._workers), 1)
        return f"ETA {mark}{_fmt_s(sum(samples) / len(samples) * remaining / parallel)}"


class _Lines:
    """One plain line per event."""

    def __init__(self, clock: EtaClock, stream: TextIO) -> None:
        self._clock = clock
        self._stream = stream

    def _write(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def _prefix(self) -> str:
        width = len(str(self._clock.total))
        return f"[{self._clock.finished:>{width}}/{self._clock.total}]"

    def job_started(self, name: str, worker: str, attempt: int) -> None:
        """A "start" line naming the worker (and the attempt, from the second on)."""
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        self._write(f"{self._prefix()} {'start':<{_STATUS_WIDTH}} {name} on {worker}{retry}")

    def chunk_finished(self, name: str, index: int, count: int, how: str) -> None:
        """A line per finished chunk."""
        self._write(f"{self._prefix()}   chunk {index + 1}/{count} of {name} ({how})")

    def job_stepped(self, name: str, step: StepEvent) -> None:
        """Nothing: step lines would bury the job lines in a log."""
        pass  # a line per denoising step would bury the job lines

    def job_finished(self, name: str, status: str, seconds: float, detail: str) -> None:
        """The job's final status, time and the run's ETA, with `detail` (an error's first line)."""
        line = f"{self._prefix()} {status:<{_STATUS_WIDTH}} {name} ({_fmt_s(seconds)}) {self._clock.eta()}"
        self._write(line + detail)

    def close(self) -> None:
        """Nothing to close: every line is already written."""
        pass


class _Bars:
    """rich live bars; finished jobs scroll above them as lines."""

    def __init__(self, clock: EtaClock, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._clock = clock
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,  # the summary table follows; the scrolled lines keep the history
        )
        self._run = self._bars.add_task("jobs", total=clock.total, eta="ETA --")
        self._jobs: dict[str, Any] = {}  # job name -> its task id (one line per job in flight)
        self._steps: dict[str, Any] = {}  # job name -> its step bar's task id (hidden until a step comes)
        self._stage: dict[str, tuple[int, int, int]] = {}  # job name -> (stage, steps, done) drawn last
        self._bars.start()

    def job_started(self, name: str, worker: str, attempt: int) -> None:
        """A line for the job, and its hidden step bar right under it."""
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        self._jobs[name] = self._bars.add_task(f"  {name} on {worker}{retry}", total=None, eta="")
        # added now, hidden, so that it is drawn right under its job line (rich draws tasks in order)
        self._steps[name] = self._bars.add_task("    steps", total=None, visible=False, eta="")

    def job_stepped(self, name: str, step: StepEvent) -> None:
        """Move the job's step bar; a new stage or a new chunk resets it."""
        task = self._steps.get(name)
        if task is None:
            return
        label = f"    steps, stage {step.stage}/{step.stages}" if step.stages > 1 else "    steps"
        stage, steps, done = self._stage.get(name, (0, 0, 0))
        if (step.stage, step.steps) != (stage, steps) or step.done < done:  # a new stage, or a new chunk
            self._bars.reset(task, total=step.steps, completed=step.done, description=label, visible=True)
        else:
            self._bars.update(task, completed=step.done)
        self._stage[name] = (step.stage, step.steps, step.done)
        self._bars.refresh()  # drawn now (events come thinned): a stage can end between refreshes

    def chunk_finished(self, name: str, index: int, count: int, how: str) -> None:
        """Show a chained job's chunk count on its line."""
        task = self._jobs.get(name)
        if task is not None:
            label = f"chunk {index + 1}/{count} ({how})"
            self._bars.update(task, total=count, completed=index + 1, eta=label)
            self._bars.refresh()  # drawn now: chunks can finish faster than the display's refresh rate

    def job_finished(self, name: str, status: str, seconds: float, detail: str) -> None:
        """Drop the job's bars, advance the run bar, and print the job's status above the bars."""
        for task in (self._jobs.pop(name, None), self._steps.pop(name, None)):
            if task is not None:
                self._bars.remove_task(task)
        self._stage.pop(name, None)
        self._bars.update(self._run, completed=self._clock.finished, eta=self._clock.eta())
        colour = {"done": "green", "failed": "red", "cancelled": "yellow"}.get(status, "cyan")
        self._bars.console.print(
            f"[{colour}]{status:<{_STATUS_WIDTH}}[/] {name} ({_fmt_s(seconds)}){detail}",
            markup=True,
            highlight=False,
        )

    def total_changed(self) -> None:
        """Redraw the run bar after a batch added jobs."""
        self._bars.update(self._run, total=self._clock.total, eta=self._clock.eta())

    def close(self) -> None:
        """Stop the live display; its bars vanish (the printed lines stay)."""
        self._bars.stop()


class Progress:
    """What the driver reports to for a launch (batches add their jobs as they come); `close()` ends a live
    display."""

    def __init__(
        self, total_jobs: int, stream: TextIO | None = None, enabled: bool = True, more: bool = False
    ) -> None:
        self._clock = EtaClock(total_jobs)
        self._enabled = enabled
        self._more = more  # more jobs may be added (`add_jobs`): the last finished job does not end the view
        out = stream or sys.stderr
        self._view: _Lines | _Bars | None = None
        if enabled:
            tty = getattr(out, "isatty", lambda: False)()
            self._view = _Bars(self._clock, out) if tty else _Lines(self._clock, out)

    def add_jobs(self, count: int, more: bool) -> None:
        """Another batch of `count` jobs to render (streamed runs); `more`: still others may follow."""
        self._clock.total += count
        self._more = more
        if isinstance(self._view, _Bars):
            self._view.total_changed()

    def job_started(self, name: str, worker: str, attempt: int) -> None:
        """A job was dispatched to `worker` (attempt counted from 1)."""
        self._clock.started(name, worker)
        if self._view:
            self._view.job_started(name, worker, attempt)

    def chunk_finished(self, name: str, index: int, count: int, seconds: float, resumed: bool) -> None:
        """Chunk `index` of `count` of a chained job finished: rendered in `seconds`, or resumed."""
        if self._view:
            self._view.chunk_finished(name, index, count, "resumed" if resumed else f"{seconds:.1f}s")

    def job_stepped(self, name: str, step: StepEvent) -> None:
        """Where the denoising of job `name`'s current window stands (a terminal's step bar)."""
        if self._view:
            self._view.job_stepped(name, step)

    def job_finished(self, name: str, status: str, seconds: float, error: str | None = None) -> None:
        """An attempt ended with `status`; the last job, with no batch to follow, ends the live display."""
        self._clock.finished_job(name, seconds, counts=status != "retried")
        detail = f" - {error.splitlines()[0][:160]}" if error and status != "done" else ""
        if self._view:
            self._view.job_finished(name, status, seconds, detail)
        if self._clock.finished >= self._clock.total and not self._more:
            self.close()  # the last job: end a live display before the summary is printed

    def close(self) -> None:
        """End the display (idempotent), so the summary prints below it."""
        if self._view:
            self._view.close()
            self._view = None


def summary_table(stats: RunStats) -> str:
    """Two columns sized to their widest entries."""
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
        (
            "throughput",
            f"{stats.done / stats.wall_s * 3600:.1f} clips/h" if stats.done and stats.wall_s > 0 else "-",
        ),
    ]
    key_w = max(len(k) for k, _ in rows)
    val_w = max(len(v) for _, v in rows)
    line = f"+{'-' * (key_w + 2)}+{'-' * (val_w + 2)}+"
    body = [f"| {k:<{key_w}} | {v:>{val_w}} |" for k, v in rows]
    reasons = [f"failed: {name}: {why}" for name, why in stats.failures]
    if stats.failed > len(stats.failures):
        reasons.append(f"... and {stats.failed - len(stats.failures)} more failed job(s): see jobs.parquet")
    return "\n".join([line, *body, line, *reasons])
