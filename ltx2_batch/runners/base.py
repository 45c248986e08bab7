"""The Runner seam: something that takes pending jobs and reports what happened to each, in completion order.

Runners execute; the driver records. Every event goes through `RunEvents`, implemented by the driver, which
alone writes the ledger and draws progress (denoising steps only draw: they write no row). A runner never
decides that a job is done without an outcome from the worker that wrote its files.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import WorkQueue
from ltx2_batch.core.step_events import StepEvent


class RunEvents(Protocol):
    def job_started(self, job: RenderJob, attempt: int, worker: str) -> None: ...

    def chunk_finished(self, job: RenderJob, chunk: ChunkOutcome, attempt: int) -> None: ...

    def job_stepped(self, job: RenderJob, step: StepEvent, attempt: int) -> None: ...

    def job_finished(self, job: RenderJob, outcome: JobOutcome, attempt: int) -> None: ...


class Runner(Protocol):
    """Warm across calls: the first `run` starts workers (and loads models), later calls reuse them."""

    def run(self, jobs: Sequence[RenderJob], events: RunEvents, stop: threading.Event) -> None:
        """Render `jobs`; return when all have a final outcome or `stop` is set (then the in-flight ones are
        reported cancelled). KeyboardInterrupt inside is handled the same way as `stop`."""
        ...

    def close(self) -> None:
        """Stop workers and free models (and a private Ray); safe to call twice or before any run."""
        ...


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
