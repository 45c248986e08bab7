"""Render one job to finished files with a warm backend: the work a worker does per job.

Shared by the local runner and the Ray actor, so both write identical outputs. It owns the order of one job:
drain what must finish first, remove a killed attempt's temporaries, check the job against the model set
before anything loads, prepare (load) the models, render (one window, a chained job, or a storyboard shot
conditioned on the previous shot's last frame), then hand the arrays to `JobFiles` (job_files.py), which
writes the files with the sidecar last. It holds the backend and the files writer for the worker's life.
Never writes the ledger: it returns a typed `JobOutcome`, which the driver records.

Overlap (overlap.py): with a settled `Overlap` other than OFF, `submit` renders a one-window video in the
caller's thread and hands its file writing to the `EncodeQueue`, so job n's files are written while job n+1
renders; the future completes when the files are. With DECODE (or ADAPTIVE, when the last job's timings say
it is shorter) and a backend whose memory plan allows it, the queue also runs the job's VAE/audio decode
(`backend.denoise(...).decode()`). Both are the same functions on the same arrays and the job's own
generator, so the files are bit-identical. A pipeline switch, an image or chained job and a storyboard shot
wait for the pending work first. Deferred jobs report `render_s` as denoise + decode wall time.

Object storage (storage/publish.py): with a `Publisher` the files are written into this node's scratch copy
of the run dir, then published on an upload thread (one job in flight) while the next job renders; the
job's future completes when the store has confirmed them. A chained job's chunks come from the bucket and go
back to it as they are stored.

Steps: with `on_step`, a backend that reports its denoising steps (StepReportingBackend) sends them, thinned
by a StepThrottle (step_progress.py), for every window of the job, chunks included. With `should_stop`, the
same listener is the cancel point: asked at every step boundary (not thinned), a stop raises
JobCancelledError inside the denoising loop, so a shared worker drops one launch's render within a step and
stays warm for the others (a chained job also stops between chunks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ltx2_batch.backends.base import (
    OverlappedDecodeBackend,
    PendingDecode,
    RenderBackend,
    RenderRequest,
    RenderResult,
    StepReportingBackend,
)
from ltx2_batch.chaining.plan import plan_chunks
from ltx2_batch.chaining.run import run_chained
from ltx2_batch.core.jobs import ImageCondition, RenderJob, RenderMode
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus, WorkerIdentity
from ltx2_batch.core.step_events import StepEvent, StepThrottle
from ltx2_batch.errors import JobCancelledError
from ltx2_batch.media.probe import read_last_frame
from ltx2_batch.media.write import write_png
from ltx2_batch.storage.publish import Publisher
from ltx2_batch.worker.job_files import JobFiles, WrittenFiles
from ltx2_batch.worker.overlap import EncodeQueue, Overlap, completed, overlapped_decode_is_shorter

ChunkCallback = Callable[[RenderJob, ChunkOutcome], None]
StepCallback = Callable[[RenderJob, StepEvent], None]
StopCheck = Callable[[], bool]


def _error_summary(exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines[-6:])
    return f"{type(exc).__name__}: {exc}\n{tail}"[-4000:]


@dataclass(frozen=True)
class RunOutput:
    """What one launch asks of a worker's writing: its files writer, its settled overlap, whether chunk
    files stay. Per launch, not per worker: one warm worker may serve launches into different places."""

    files: JobFiles
    overlap: Overlap = Overlap.OFF
    keep_chunks: bool = False
    publisher: Publisher | None = None  # a run dir on object storage: files are published from scratch

    @property
    def jobs_at_once(self) -> int:
        """Jobs a worker takes at once: 2 when job n's files are written or uploaded while job n+1 renders."""
        return 2 if self.overlap.encodes or self.publisher is not None else 1


class _ModelLoadError(Exception):
    """The shared model set failed to load (its cause says why, naming the file)."""


class JobExecutor:
    """One worker's job loop body: a warm backend, held for the worker's life, and one encode thread."""

    def __init__(self, backend: RenderBackend, identity: WorkerIdentity) -> None:
        self._backend = backend
        self._identity = identity
        self._warm_key: tuple[Any, ...] | None = None
        self._last_cycle: tuple[float, float, float] | None = None  # denoise, decode, encode seconds
        self._queue = EncodeQueue()
        self._uploads = EncodeQueue()  # a bucket run's uploads: job n's beside job n+1's render

    @property
    def backend(self) -> RenderBackend:
        """The backend this worker holds (a pool worker warms it before its first job)."""
        return self._backend

    def _deferrable(self, out: RunOutput) -> OverlappedDecodeBackend | None:
        """The backend, typed for denoise()/decode(), when this launch's decodes may be deferred."""
        backend = self._backend
        return backend if out.overlap.decodes and isinstance(backend, OverlappedDecodeBackend) else None

    def submit(
        self,
        job: RenderJob,
        out: RunOutput,
        on_chunk: ChunkCallback | None = None,
        should_stop: StopCheck | None = None,
        overlap: bool | None = None,
        on_step: StepCallback | None = None,
    ) -> Future[JobOutcome]:
        """Render `job` now; when overlapping (default: the settled overlap) a one-window video's files are
        written on the encode thread and the future completes when they are, so the caller can render the
        next job. Chained and image jobs always finish before returning. Never raises for a job's own
        failure (application errors become a failed outcome and are not retried); KeyboardInterrupt
        propagates and the caller records it. On object storage the files are then published on the upload
        thread (one job in flight, beside the next render) and the future completes once they are."""
        publisher = out.publisher
        if publisher is None:
            return self._write(job, out, on_chunk, should_stop, overlap, on_step)
        reported = on_chunk

        def on_stored_chunk(chunk_job: RenderJob, chunk: ChunkOutcome) -> None:
            """Report the chunk once its state is in the bucket, named by its objects."""
            if reported is not None:  # reported once its state is in the bucket, named by its objects
                reported(chunk_job, publisher.chunk_outcome(chunk))

        written = self._write(job, out, on_stored_chunk, should_stop, overlap, on_step)
        return self._uploads.submit(lambda: publisher.publish(job, written.result()))

    def _write(
        self,
        job: RenderJob,
        out: RunOutput,
        on_chunk: ChunkCallback | None,
        should_stop: StopCheck | None,
        overlap: bool | None,
        on_step: StepCallback | None,
    ) -> Future[JobOutcome]:
        """`submit` up to the job's files written (and checked) where the worker writes them."""
        overlap = out.overlap.encodes if overlap is None else overlap
        started = time.perf_counter()
        outcome = self._outcome_factory(job, started)
        key = (job.pipeline, job.loras)
        # Wait for the pending encode (and decode) first when: the previous shot's file must be complete
        # before its last frame is read (`after`); an image or chained job decodes in line (never two decode
        # peaks at once); a pipeline switch may free the decoders a pending decode still reads.
        if job.after or job.mode is not RenderMode.VIDEO or key != self._warm_key:
            self.drain()
        self._warm_key = key
        out.files.remove_partials(job)
        try:
            # the denoise runs here (a deferred decode has no steps); a stop is honoured at each step
            with self._step_reports(job, on_step, should_stop):
                self._backend.check(job, one_window=job.mode is not RenderMode.CHAINED)  # before loading
                load_s = self._load(job)
                render_job = self._with_previous_shot(job, out) if job.after else job
                if job.mode is RenderMode.CHAINED:
                    written = self._execute_chained(render_job, out, on_chunk, should_stop)
                    return completed(outcome(OutcomeStatus.DONE, load_s=load_s, written=written))
                write = self._render_window(
                    render_job, out, defer=overlap and self._decode_can_wait(job, out)
                )
        except JobCancelledError as exc:
            return completed(outcome(OutcomeStatus.CANCELLED, error=str(exc)))
        except _ModelLoadError as exc:  # the shared model set is broken: the run stops once
            cause = exc.__cause__
            why = (
                f"the model could not be loaded ({type(cause).__name__}: {cause}); no job can render: fix "
                "the model files (plan=true checks their headers) and rerun"
            )
            return completed(outcome(OutcomeStatus.FAILED, error=why, fatal=True))
        except Exception as exc:  # any job failure is recorded, the run goes on
            return completed(outcome(OutcomeStatus.FAILED, error=_error_summary(exc)))

        def encode() -> JobOutcome:
            """Write the files (a failure fails only this job); an overlapped job's timings steer the next."""
            try:
                written = write()
            except Exception as exc:  # an encode failure fails this job only
                return outcome(OutcomeStatus.FAILED, error=_error_summary(exc))
            if overlap:
                self._last_cycle = _cycle(written)
            return outcome(OutcomeStatus.DONE, load_s=load_s, written=written)

        if not overlap or job.mode is not RenderMode.VIDEO:
            return completed(encode())
        return self._queue.submit(encode)

    def _step_reports(
        self, job: RenderJob, on_step: StepCallback | None, should_stop: StopCheck | None
    ) -> AbstractContextManager[Any]:
        """Where the backend's step events for `job` go while it renders (thinned: StepThrottle), and the
        cancel point: `should_stop` is asked at every step boundary, and a stop raises JobCancelledError from
        inside the denoising loop (the render ends there; the job is reported cancelled)."""
        if (on_step is None and should_stop is None) or not isinstance(self._backend, StepReportingBackend):
            return contextlib.nullcontext()
        send = StepThrottle(lambda event: on_step(job, event)) if on_step is not None else None

        def listener(event: StepEvent) -> None:
            """Raise JobCancelledError when a stop was asked (the cancel point), else pass the step on."""
            if should_stop is not None and should_stop():
                raise JobCancelledError(
                    f"cancelled at step {event.done}/{event.steps} of stage {event.stage}/{event.stages}"
                )
            if send is not None:
                send(event)

        return self._backend.reporting_steps(listener)

    def _outcome_factory(self, job: RenderJob, started: float) -> Callable[..., JobOutcome]:
        """Builds this attempt's outcome: identity and total time filled in, file facts from WrittenFiles."""

        def make(
            status: OutcomeStatus,
            *,
            load_s: float = 0.0,
            written: WrittenFiles | None = None,
            error: str | None = None,
            fatal: bool = False,
        ) -> JobOutcome:
            """This attempt's outcome with `status`, the worker's identity and the time since it started."""
            files = dataclasses.asdict(written) if written is not None else {}
            files["chunks"] = written.chunks if written is not None else ()
            return JobOutcome(
                job_id=job.job_id,
                status=status,
                worker=self._identity.worker,
                node=self._identity.node,
                load_s=load_s,
                total_s=time.perf_counter() - started,
                error=error,
                fatal=fatal,
                **files,
            )

        return make

    def _load(self, job: RenderJob) -> float:
        """The models `job` needs (seconds spent loading). A job without LoRAs of its own loads only the
        shared model set: when that fails, no job can render, and the error is raised as fatal."""
        try:
            return self._backend.prepare(job.pipeline, job.loras)
        except Exception as exc:
            if job.loras:  # perhaps the job's own LoRA: this job fails, the others go on
                raise
            raise _ModelLoadError from exc

    def _render_window(self, job: RenderJob, out: RunOutput, defer: bool) -> Callable[[], WrittenFiles]:
        """Render one window now; return what writes its files (and, deferred, decodes it first)."""
        t0 = time.perf_counter()
        deferrable = self._deferrable(out) if defer else None
        if deferrable is not None:
            pending: PendingDecode = deferrable.denoise(RenderRequest(job=job))
            denoise_s = time.perf_counter() - t0

            def decode_and_write() -> WrittenFiles:
                """Decode the denoised job, then write its files; `render_s` counts denoise plus decode."""
                t1 = time.perf_counter()
                decoded = pending.decode()  # on the encode thread: the next job may be denoising
                decoded.info["decode_overlapped"] = True  # in the sidecar: how this job was decoded
                return out.files.write_window(job, decoded, denoise_s + time.perf_counter() - t1)

            return decode_and_write
        result: RenderResult = self._backend.render(RenderRequest(job=job))
        render_s = time.perf_counter() - t0
        result.info["decode_overlapped"] = False
        return lambda: out.files.write_window(job, result, render_s)

    def _decode_can_wait(self, job: RenderJob, out: RunOutput) -> bool:
        """A decoding overlap, the backend (memory plan, device) allows it for this job, and, when adaptive,
        the previous job's timings say the decode beside the next denoise shortens the cycle."""
        deferrable = self._deferrable(out)
        if deferrable is None or job.mode is not RenderMode.VIDEO:
            return False
        if not deferrable.can_overlap_decode(job):
            return False
        if out.overlap is not Overlap.ADAPTIVE or self._last_cycle is None:
            return True
        return overlapped_decode_is_shorter(*self._last_cycle)

    def drain(self) -> None:
        """Wait until the background encode (if any) has written its files, and their upload is done."""
        self._queue.drain()
        self._uploads.drain()

    def shutdown(self) -> None:
        """Finish the pending encode and upload and stop their threads (idempotent)."""
        self._queue.shutdown()
        self._uploads.shutdown()

    def close(self) -> None:
        """Finish pending files, then free the backend's models and device caches."""
        self.shutdown()
        self._backend.close()

    def execute(
        self,
        job: RenderJob,
        out: RunOutput,
        on_chunk: ChunkCallback | None = None,
        should_stop: StopCheck | None = None,
        on_step: StepCallback | None = None,
    ) -> JobOutcome:
        """Render and write `job`; returns when its files are complete (see `submit`)."""
        return self.submit(job, out, on_chunk, should_stop, overlap=False, on_step=on_step).result()

    def _with_previous_shot(self, job: RenderJob, out: RunOutput) -> RenderJob:
        """Storyboard: the previous shot's last frame conditions frame 0 of this shot (docs/behaviour.md)."""
        if out.publisher is not None:  # rendered on any node: it is in the bucket
            out.publisher.fetch_output(job.after)
        found = [p for p in out.files.layout.previous_shot_outputs(job) if p.is_file()]
        if not found:
            generated = out.files.layout.root / "generated"
            raise FileNotFoundError(
                f"previous shot {job.after} has no output in {generated}; rerun the scene"
            )
        png = out.files.layout.conditioning(job)
        write_png(png, read_last_frame(found[0]))
        condition = ImageCondition(path=str(png), frame_idx=0, strength=1.0)
        return dataclasses.replace(job, images=(condition, *job.images))

    def _execute_chained(
        self, job: RenderJob, out: RunOutput, on_chunk: ChunkCallback | None, should_stop: StopCheck | None
    ) -> WrittenFiles:
        plan = plan_chunks(
            job.num_frames,
            job.chunking.chunk_frames,
            job.chunking.overlap_frames,
            self._backend.temporal_scale,
        )
        if out.publisher is not None:  # its resume state is the bucket's, whichever node stored it
            out.publisher.fetch_chunks(job)
        chained = run_chained(
            self._backend,
            job,
            plan,
            out.files.layout,
            crf=out.files.video_crf,
            count=out.files.count,
            keep_chunks=out.keep_chunks,
            on_chunk=(lambda outcome: on_chunk(job, outcome)) if on_chunk else None,
            should_stop=should_stop,
            sync=out.publisher,
        )
        out.files.write_thumbnail(job, chained.first_frame)
        # The chunk folder (resume state) is removed by the driver once the done row is durable.
        return out.files.finish(
            job,
            chained.summary,
            chained.info.frame_count,
            chained.render_s,
            chained.stitch_tail_s,
            chained.chunks,
            chunk_files_kept=out.keep_chunks,
        )


def _cycle(written: WrittenFiles) -> tuple[float, float, float]:
    """(denoise, decode, encode) seconds of a finished one-window job, from its render timings."""
    phases = written.phases
    decode = phases.get("decode_video", 0.0) + phases.get("decode_audio", 0.0)
    return max(written.render_s - decode, 0.0), decode, written.encode_s
