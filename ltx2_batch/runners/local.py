"""Run jobs one after another in this process, with one warm backend: `engine=local`.

The same executor as the Ray actor, so outputs are identical; useful on a laptop, in tests, and to debug.
Ctrl-C interrupts the render in progress: that job is reported cancelled and the rest are not started.
With `output.overlap_encode` the executor encodes job n on its encode thread while this loop renders job n+1;
job n is reported when its files are complete (so `job_started(n+1)` may come before `job_finished(n)`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from ltx2_batch.execute import JobExecutor, JobOutcome
from ltx2_batch.jobs import RenderJob
from ltx2_batch.runners.base import RunEvents, unrunnable
from ltx2_batch.scheduler import WorkQueue, affinity_key


class LocalRunner:
    def __init__(self, make_executor: Callable[[], JobExecutor], worker_name: str = "local-0") -> None:
        self._make_executor = make_executor
        self._worker = worker_name

    def run(self, jobs: Sequence[RenderJob], events: RunEvents, stop: threading.Event) -> None:
        executor = self._make_executor()
        if executor.overlaps_encode:
            self._run_overlapped(executor, jobs, events, stop)
            return
        queue = WorkQueue(jobs)
        warm = None
        while not stop.is_set():
            job = queue.take(warm)
            if job is None:
                return
            warm = affinity_key(job)
            events.job_started(job, 1, self._worker)
            try:
                outcome = executor.execute(
                    job,
                    on_chunk=lambda j, chunk: events.chunk_finished(j, chunk, 1),
                    should_stop=stop.is_set,
                )
            except KeyboardInterrupt:
                stop.set()
                outcome = JobOutcome(job_id=job.job_id, status="cancelled", error="interrupted", worker=self._worker)
            events.job_finished(job, outcome, 1)
            for blocked in queue.finished(job.job_id, ok=outcome.status == "done"):
                events.job_finished(blocked, unrunnable(blocked, job, self._worker), 1)

    def _run_overlapped(
        self, executor: JobExecutor, jobs: Sequence[RenderJob], events: RunEvents, stop: threading.Event
    ) -> None:
        queue = WorkQueue(jobs)
        warm = None
        pending: tuple[RenderJob, Future[JobOutcome]] | None = None

        def report(job: RenderJob, outcome: JobOutcome) -> None:
            events.job_finished(job, outcome, 1)
            for blocked in queue.finished(job.job_id, ok=outcome.status == "done"):
                events.job_finished(blocked, unrunnable(blocked, job, self._worker), 1)

        try:
            while not stop.is_set():
                job = queue.take(warm)
                if job is None:
                    if pending is None:
                        return
                    report(pending[0], pending[1].result())  # may release a shot that waited for it
                    pending = None
                    continue
                warm = affinity_key(job)
                events.job_started(job, 1, self._worker)
                try:
                    future = executor.submit(
                        job,
                        on_chunk=lambda j, chunk: events.chunk_finished(j, chunk, 1),
                        should_stop=stop.is_set,
                    )
                except KeyboardInterrupt:
                    stop.set()
                    cancelled = JobOutcome(
                        job_id=job.job_id, status="cancelled", error="interrupted", worker=self._worker
                    )
                    future = Future()
                    future.set_result(cancelled)
                if pending is not None:
                    report(pending[0], pending[1].result())
                pending = (job, future)
        finally:
            if pending is not None:  # its files are being written: report it once they are complete
                report(pending[0], pending[1].result())
            executor.shutdown()
