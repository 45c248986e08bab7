"""Run jobs one after another in this process, with one warm backend: `engine=local`.

The same executor as the Ray actor, so outputs are identical; useful on a laptop, in tests, and to debug.
The executor (and its models) is built on the first `run` and kept until `close`, so a streaming run's
batches share it. Ctrl-C interrupts the render in progress (the driver raises KeyboardInterrupt only while
`interruptible` is set, i.e. inside a render): that job is reported cancelled and the rest are not started.
With an `output.overlap` job n is encoded on the executor's encode thread while job n+1 renders; job n is
reported when its files are complete (so `job_started(n+1)` may come before `job_finished(n)`).
Denoising steps go straight to `events.job_stepped` (already thinned by the executor). Batches are pulled
one after another as the queue empties; job n's files are still written beside the next batch's first render.

Threads: torch's intra-op pool gets one core fewer than this process may use (at least one), unless
`OMP_NUM_THREADS` says otherwise: the encode thread and ffmpeg need a core, and torch's spinning threads
fighting them made a tiny 64x64 two-stage render on 2 cores take 8.3 s instead of 0.12 s (README, Benchmarks:
bench/torch_threads.py). A Ray actor gets its threads from Ray instead (`OMP_NUM_THREADS` = its CPUs).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import affinity_key
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.runners.base import JobFeed, RunEvents, release_dependents
from ltx2_batch.worker.executor import JobExecutor, RunOutput
from ltx2_batch.worker.spec import RunSpec, renders_on_cuda, run_output


class LocalRunner:
    """The Runner for `engine=local`: one executor in this process, built on the first batch."""

    def __init__(
        self,
        make_executor: Callable[[], JobExecutor],
        run: RunSpec,
        worker_name: str = "local-0",
        interruptible: threading.Event | None = None,
    ) -> None:
        self._make_executor = make_executor
        self._run = run
        self._worker = worker_name
        self._interruptible = interruptible or threading.Event()
        self._executor: JobExecutor | None = None
        self._out: RunOutput | None = None

    def run(self, batches: Iterator[Sequence[RenderJob]], events: RunEvents, stop: threading.Event) -> None:
        """Render every job here, warm affinity first; a job is reported once its files are complete."""
        if self._executor is None or self._out is None:
            self._executor = self._make_executor()
            settle_torch_threads()
            self._out = run_output(self._run, cuda=renders_on_cuda(self._executor))
        executor, out = self._executor, self._out
        feed = JobFeed(batches)
        queue = feed.queue
        warm = None
        encoding: tuple[RenderJob, Future[JobOutcome]] | None = None

        def report(job: RenderJob, outcome: JobOutcome) -> None:
            """Report the outcome, then release (or fail) the storyboard shots that waited for this job."""
            events.job_finished(job, outcome, 1)
            release_dependents(queue, job, outcome, events, self._worker)

        try:
            while not stop.is_set():
                feed.top_up(1)  # the next batch is planned while the last job's files are written
                job = queue.take(warm)
                if job is None:
                    if encoding is None:
                        return
                    report(encoding[0], encoding[1].result())  # may release a shot that waited for it
                    encoding = None
                    continue
                warm = affinity_key(job)
                events.job_started(job, 1, self._worker)
                future = self._submit(executor, out, job, events, stop)
                if encoding is not None:  # complete by now: submit waits for the previous encode
                    report(encoding[0], encoding[1].result())
                    encoding = None
                if future.done():
                    report(job, future.result())
                else:
                    encoding = (job, future)
        finally:
            if encoding is not None:  # its files are being written: report it once they are complete
                report(encoding[0], encoding[1].result())
            executor.drain()

    def _submit(
        self, executor: JobExecutor, out: RunOutput, job: RenderJob, events: RunEvents, stop: threading.Event
    ) -> Future[JobOutcome]:
        """Render with the main thread interruptible; chunk rows are written with it not."""

        def on_chunk(chunk_job: RenderJob, chunk: ChunkOutcome) -> None:
            """Record the chunk with the main thread not interruptible: no signal lands in a ledger append."""
            self._interruptible.clear()
            try:
                events.chunk_finished(chunk_job, chunk, 1)
            finally:
                self._interruptible.set()

        def on_step(step_job: RenderJob, step: StepEvent) -> None:
            """Pass the step on (the executor already thinned them)."""
            events.job_stepped(step_job, step, 1)

        future: Future[JobOutcome] | None = None
        try:
            try:
                self._interruptible.set()
                if stop.is_set():  # the stop came while the job was being dispatched
                    raise KeyboardInterrupt
                future = executor.submit(
                    job, out, on_chunk=on_chunk, should_stop=stop.is_set, on_step=on_step
                )
            finally:
                self._interruptible.clear()
        except KeyboardInterrupt:
            stop.set()
            if future is None:  # an interrupt after the job finished keeps its real outcome
                future = Future()
                future.set_result(
                    JobOutcome(
                        job_id=job.job_id,
                        status=OutcomeStatus.CANCELLED,
                        error="interrupted",
                        worker=self._worker,
                    )
                )
        return future

    def close(self) -> None:
        """Close the executor and its models; a later run builds a new one."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None


def torch_threads(cores: int, environ: Mapping[str, str]) -> int | None:
    """Intra-op threads for a local render: one core left for encoding (at least one thread); None when
    `OMP_NUM_THREADS` is set (the user's choice, which torch has read already)."""
    if environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, cores - 1)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, as a container or `taskset` limits it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def settle_torch_threads() -> None:
    """Apply `torch_threads` when the backend loaded torch (the fake backend does not)."""
    torch = sys.modules.get("torch")
    threads = torch_threads(usable_cores(), os.environ)
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
