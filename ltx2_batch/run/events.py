"""What the driver does with each event a runner reports: a ledger row, a progress line, run statistics.

`LedgerEvents` is the driver's `RunEvents` (runners/base.py): the only writer of the run's journal. A job's
`running` row is written when it is dispatched and its final row (done, failed, cancelled, retried) when its
outcome comes back; a chunk row as each chunk of a chained job finishes. Denoising steps only draw.
Must not: decide an outcome (workers do) or touch the files of a job (workers wrote them, tidying is the
session's `after_done`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.ledger.schema import JobStatus, RunContext, chunk_outcome_row, job_row, outcome_row
from ltx2_batch.ledger.store import LedgerStore
from ltx2_batch.run.progress import Progress, RunStats

_log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, as ledger rows record it."""
    return datetime.now(timezone.utc)


class LedgerEvents:
    """RunEvents implementation: ledger rows + progress lines + run statistics."""

    def __init__(
        self,
        store: LedgerStore,
        ctx: RunContext,
        progress: Progress,
        stats: RunStats,
        after_done: Callable[[RenderJob], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._on_fatal = on_fatal  # a worker could not load the model: the session stops the run
        self._after_done = after_done  # runs once the job's done row is durable (fsynced)
        self._ctx = ctx
        self._progress = progress
        self._stats = stats
        self._started: dict[str, tuple[float, datetime]] = {}
        self._workers: dict[str, str] = {}  # job id -> the worker of its attempt in flight (for chunk rows)
        self._ready_at: dict[str, float] = {}  # job id -> when its batch reached the runner

    def jobs_ready(self, jobs: Sequence[RenderJob]) -> None:
        """A batch reached the runner: its jobs wait from now (their rows' `queue_s`)."""
        now = time.monotonic()
        self._ready_at.update((job.job_id, now) for job in jobs)

    def job_started(self, job: RenderJob, attempt: int, worker: str) -> None:
        """A `running` row for this attempt, and its line."""
        now = utc_now()
        self._started[job.job_id] = (time.monotonic(), now)
        self._workers[job.job_id] = worker
        row = job_row(
            self._ctx,
            job,
            JobStatus.RUNNING,
            attempt=attempt,
            worker=worker,
            started_at=now,
            queue_s=self._queue_s(job),
        )
        self._store.append(row)
        self._progress.job_started(job.name, worker, attempt)

    def chunk_finished(self, job: RenderJob, chunk: ChunkOutcome, attempt: int) -> None:
        """A `chunk` row for one finished (or resumed) chunk of a chained job."""
        worker = self._workers.get(job.job_id)
        row = chunk_outcome_row(self._ctx, job, chunk, attempt=attempt, finished_at=utc_now(), worker=worker)
        self._store.append(row)
        if chunk.note:  # a worker's warning, shown by the driver (a Ray worker's log never reaches it)
            _log.warning("%s, chunk %d/%d: %s", job.name, chunk.index + 1, chunk.count, chunk.note)
        resumed = chunk.status is OutcomeStatus.RESUMED
        self._progress.chunk_finished(job.name, chunk.index, chunk.count, chunk.render_s, resumed)

    def job_stepped(self, job: RenderJob, step: StepEvent, attempt: int) -> None:  # noqa: ARG002 - RunEvents
        """Denoising steps draw only: they write no row."""
        self._progress.job_stepped(job.name, step)

    def _queue_s(self, job: RenderJob) -> float:
        """Seconds from when the job was ready to dispatch (its batch reached the runner) to its start."""
        started = self._started.get(job.job_id, (time.monotonic(), None))[0]
        return max(started - self._ready_at.get(job.job_id, started), 0.0)

    def job_finished(self, job: RenderJob, outcome: JobOutcome, attempt: int) -> None:
        """The attempt's outcome row; a done row is durable before `after_done` tidies the job's state."""
        # a retried attempt keeps its start for the next one's row; a final outcome releases it
        started = (
            self._started.get(job.job_id) if not outcome.is_final else self._started.pop(job.job_id, None)
        )
        t0, started_at = started or (time.monotonic(), utc_now())
        row = outcome_row(
            self._ctx,
            job,
            outcome,
            attempt=attempt,
            started_at=started_at,
            finished_at=utc_now(),
            queue_s=self._queue_s(job),
        )
        self._store.append(row)
        if outcome.is_final:
            self._ready_at.pop(job.job_id, None)
            self._workers.pop(job.job_id, None)
        if outcome.status is OutcomeStatus.DONE and self._after_done is not None:
            self._after_done(job)
        if outcome.fatal and self._on_fatal is not None:
            self._on_fatal(outcome.error or "the model could not be loaded")
        if outcome.is_final:
            self._stats.statuses[outcome.status.value] += 1
            if outcome.status is OutcomeStatus.FAILED:
                self._stats.failed_because(job.name, outcome.error)
            self._stats.render_s += outcome.render_s
            self._stats.frames += outcome.frames_written
        self._progress.job_finished(job.name, outcome.status.value, time.monotonic() - t0, outcome.error)
