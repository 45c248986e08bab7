"""The Runner seam: something that takes a launch's batches of pending jobs and reports what happened to each,
in completion order.

Runners execute; the driver records. Every event goes through `RunEvents`, implemented by the driver, which
alone writes the ledger and draws progress (denoising steps only draw: they write no row). A runner never
decides that a job is done without an outcome from the worker that wrote its files.
A runner pulls the next batch itself, through a `JobFeed`, while the last jobs of the current one still
render: the session's batches are planned on demand (a million-line prompt file, 10,000 jobs at a time)
and no worker waits at a batch boundary for the others to drain.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import WorkQueue
from ltx2_batch.core.step_events import StepEvent


class RunEvents(Protocol):
    """What a runner reports to, in completion order: the driver's ledger and progress (run/events.py)."""

    def job_started(self, job: RenderJob, attempt: int, worker: str) -> None:
        """Implementers record that `job` went to `worker` for attempt `attempt` (its `running` row)."""
        ...

    def chunk_finished(self, job: RenderJob, chunk: ChunkOutcome, attempt: int) -> None:
        """Implementers record one finished chunk of a chained job; called before the job's final outcome."""
        ...

    def job_stepped(self, job: RenderJob, step: StepEvent, attempt: int) -> None:
        """Implementers show where `job`'s denoising stands; they write no row."""
        ...

    def job_finished(self, job: RenderJob, outcome: JobOutcome, attempt: int) -> None:
        """Implementers record the attempt's outcome: done, failed, cancelled or retried."""
        ...


class Runner(Protocol):
    """Starts (or finds warm) workers on the first batch and keeps them until `close`."""

    def run(self, batches: Iterator[Sequence[RenderJob]], events: RunEvents, stop: threading.Event) -> None:
        """Render every job of every batch, pulling the next batch before the current one runs dry; return
        when all have a final outcome or `stop` is set (then the in-flight ones are reported cancelled).
        KeyboardInterrupt inside is handled the same way as `stop`."""
        ...

    def close(self) -> None:
        """Stop or release the workers (and a private Ray); safe to call twice or before any run."""
        ...


class JobFeed:
    """A launch's jobs as its batches arrive: one WorkQueue, topped up from the batch iterator on demand."""

    def __init__(self, batches: Iterator[Sequence[RenderJob]]) -> None:
        self.queue = WorkQueue()
        self._batches = batches
        self.exhausted = False

    def top_up(self, runnable: int) -> None:
        """Pull batches until `runnable` jobs can be taken now, or the batches are exhausted."""
        while not self.exhausted and self.queue.runnable < runnable:
            batch = next(self._batches, None)
            if batch is None:
                self.exhausted = True
            else:
                self.queue.extend(batch)

    @property
    def finished(self) -> bool:
        """No job is left to take, and no batch to pull."""
        return self.exhausted and not len(self.queue)


def release_dependents(
    queue: WorkQueue, job: RenderJob, outcome: JobOutcome, events: RunEvents, worker: str
) -> None:
    """After `job` finished: release the shots that follow it, or fail them if it did not finish."""
    for blocked in queue.finished(job.job_id, ok=outcome.status is OutcomeStatus.DONE):
        events.job_finished(blocked, unrunnable(blocked, job, worker), 1)


def unrunnable(job: RenderJob, predecessor: RenderJob, worker: str) -> JobOutcome:
    """The outcome of a storyboard shot whose previous shot did not finish: it cannot be conditioned."""
    return JobOutcome(
        job_id=job.job_id,
        status=OutcomeStatus.FAILED,
        worker=worker,
        error=f"not rendered: the previous shot {predecessor.name!r} did not finish; rerun to retry both",
    )
