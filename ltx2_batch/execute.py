"""Render one job to finished files with a warm backend: the work a worker does per job.

Shared by the local runner and the Ray actor, so both write identical outputs. Files are written to
temporary names and renamed into place; the sidecar is written last, so a job whose sidecar exists is
complete. This module writes files but never the ledger: ledger rows are the driver's.

With `overlap_encode`, `submit` renders a job in the caller's thread and hands its MP4 encode, thumbnail and
sidecar to one background thread, so job n's files are written while job n+1 renders; at most one encode is
in flight (the next submit waits for it), and the outcome future completes when the job's files are
complete. The render and the encode are the same two functions the sequential path runs, in the same order
on the same arrays, so the files are bit-identical. With `overlap_decode` as well, and a backend whose memory
policy allows it, the encode thread also runs the job's VAE/audio decode (`backend.denoise(...).decode()`),
so job n decodes while job n+1 denoises; the decode is the same code on the same tensors and the job's own
generator, so the files are again bit-identical. A pipeline switch, an image or chained job and a storyboard
shot wait for the pending decode first. The decode and the MP4 encode then share one thread: the cycle is
max(denoise, decode + encode) instead of max(denoise + decode, encode), which is worse when the encode
already outlasts the denoise (a slow CPU beside a fast GPU); with `adaptive_decode` (overlap_decode left on
auto) each job takes whichever of the two the previous job's timings say is shorter. Deferred jobs report
`render_s` as denoise + decode wall time, the decode running beside (and slowing) the next denoise.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ltx2_batch.backends.base import OverlappedDecodeBackend, RenderBackend, RenderRequest, RenderResult
from ltx2_batch.chaining.plan import plan_chunks
from ltx2_batch.chaining.run import ChunkOutcome, run_chained
from ltx2_batch.errors import JobCancelledError
from ltx2_batch.jobs import ImageCondition, RenderJob, RenderMode, canonical_json
from ltx2_batch.layout import OutputLayout
from ltx2_batch.media.probe import read_last_frame
from ltx2_batch.media.sidecar import write_sidecar
from ltx2_batch.media.write import PARTIAL_SUFFIX, partials_of, write_mp4, write_png, write_thumbnail

ChunkCallback = Callable[[RenderJob, ChunkOutcome], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class JobOutcome:
    """What a worker reports for one job attempt; the driver turns it into ledger rows."""

    job_id: str
    status: str  # done | failed | cancelled
    output_path: str | None = None
    thumbnail_path: str | None = None
    sidecar_path: str | None = None
    frames_written: int = 0
    duration_s: float = 0.0
    load_s: float = 0.0
    render_s: float = 0.0
    encode_s: float = 0.0
    total_s: float = 0.0
    error: str | None = None
    worker: str = ""
    node: str = ""
    device: str = ""
    memory_policy: str = ""  # what the backend's memory policy chose for this job (resident, offload...)
    phases: dict[str, float] = field(default_factory=dict)
    chunks: tuple[ChunkOutcome, ...] = ()


@dataclass(frozen=True)
class WorkerIdentity:
    worker: str
    node: str

    @classmethod
    def here(cls, worker: str) -> WorkerIdentity:
        return cls(worker=worker, node=socket.gethostname())


def _error_summary(exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines[-6:])
    return f"{type(exc).__name__}: {exc}\n{tail}"[-4000:]


class JobExecutor:
    """Owns nothing but references: the backend (warm model) and the run's output layout."""

    def __init__(
        self,
        backend: RenderBackend,
        layout: OutputLayout,
        identity: WorkerIdentity,
        run_info: dict[str, Any],
        video_crf: int = 18,
        thumbnail_width: int = 320,
        keep_chunk_frames: bool = False,
        overlap_encode: bool = False,
        overlap_decode: bool = False,
        adaptive_decode: bool = False,
    ) -> None:
        self._backend = backend
        self._layout = layout
        self._identity = identity
        self._run_info = run_info
        self._crf = video_crf
        self._thumb_width = thumbnail_width
        self._keep_chunk_frames = keep_chunk_frames
        self._overlap = overlap_encode or overlap_decode
        # the backend again, typed for denoise()/decode(), when decodes may be deferred (else None)
        self._deferrable = (
            backend if overlap_decode and isinstance(backend, OverlappedDecodeBackend) else None
        )
        self._adaptive = adaptive_decode
        self._warm_key: tuple[Any, ...] | None = None
        self._last_cycle: tuple[float, float, float] | None = None  # denoise, decode, encode seconds
        self._encoder: ThreadPoolExecutor | None = None
        self._encoding: Future[JobOutcome] | None = None

    @property
    def overlaps_encode(self) -> bool:
        return self._overlap

    def submit(
        self,
        job: RenderJob,
        on_chunk: ChunkCallback | None = None,
        should_stop: StopCheck | None = None,
        overlap: bool | None = None,
    ) -> Future[JobOutcome]:
        """Render `job` now; with overlap (default: `overlap_encode`) a one-window video is encoded on the
        encode thread and the future completes when its files are, so the caller can render the next job.
        Chained and image jobs always finish before returning. The encode queue holds one job: this waits
        for the previous encode first. Never raises for a job's own failure (application errors become a
        failed outcome and are not retried); KeyboardInterrupt propagates and the caller records it."""
        overlap = self._overlap if overlap is None else overlap
        started = time.perf_counter()
        base = {"job_id": job.job_id, "worker": self._identity.worker, "node": self._identity.node}
        key = (job.pipeline, job.loras)
        # Wait for the pending encode (and decode) first when: the previous shot's file must be complete
        # before its last frame is read (`after`); an image or chained job decodes in line (never two decode
        # peaks at once); a pipeline switch may free the decoders a pending decode still reads.
        if job.after or job.mode is not RenderMode.VIDEO or key != self._warm_key:
            self.drain()
        self._warm_key = key
        self._remove_partials(job)
        try:
            self._backend.check(job, one_window=job.mode is not RenderMode.CHAINED)  # before any loading
            load_s = self._backend.prepare(job.pipeline, job.loras)
            render_job = self._with_previous_shot(job) if job.after else job
            if job.mode is RenderMode.CHAINED:
                outcome = self._execute_chained(render_job, on_chunk, should_stop)
                total = time.perf_counter() - started
                return _done(JobOutcome(status="done", load_s=load_s, total_s=total, **base, **outcome))
            defer = overlap and self._decode_can_wait(job)
            if defer:
                assert self._deferrable is not None  # _decode_can_wait checked it
                t0 = time.perf_counter()
                pending = self._deferrable.denoise(RenderRequest(job=render_job))
                denoise_s = time.perf_counter() - t0
            else:
                result, render_s = self._render_single(render_job)
                result.info["decode_overlapped"] = False
        except JobCancelledError as exc:
            return _done(
                JobOutcome(status="cancelled", error=str(exc), total_s=time.perf_counter() - started, **base)
            )
        except Exception as exc:  # any job failure is recorded, the run goes on
            return _done(
                JobOutcome(
                    status="failed", error=_error_summary(exc), total_s=time.perf_counter() - started, **base
                )
            )

        def encode() -> JobOutcome:
            try:
                if defer:  # this job's decode, on the encode thread (the next job may be denoising)
                    t0 = time.perf_counter()
                    decoded = pending.decode()
                    decoded.info["decode_overlapped"] = True  # in the sidecar: how this job was decoded
                    outcome = self._encode_single(render_job, decoded, denoise_s + time.perf_counter() - t0)
                else:
                    outcome = self._encode_single(render_job, result, render_s)
                if overlap:
                    self._last_cycle = _cycle(outcome)
            except Exception as exc:  # an encode failure fails this job only
                return JobOutcome(
                    status="failed", error=_error_summary(exc), total_s=time.perf_counter() - started, **base
                )
            return JobOutcome(
                status="done", load_s=load_s, total_s=time.perf_counter() - started, **base, **outcome
            )

        if not overlap or job.mode is not RenderMode.VIDEO:
            return _done(encode())
        self.drain()
        if self._encoder is None:
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self._encoding = self._encoder.submit(encode)
        return self._encoding

    def _decode_can_wait(self, job: RenderJob) -> bool:
        """overlap_decode asked for, the backend (memory plan, device) allows it for this job, and, when
        adaptive, the previous job's timings say the decode beside the next denoise shortens the cycle."""
        if self._deferrable is None or job.mode is not RenderMode.VIDEO:
            return False
        if not self._deferrable.can_overlap_decode(job):
            return False
        if not self._adaptive or self._last_cycle is None:
            return True
        return overlapped_decode_is_shorter(*self._last_cycle)

    def drain(self) -> None:
        """Wait until the background encode (if any) has written its files."""
        if self._encoding is not None:
            self._encoding.result()
            self._encoding = None

    def shutdown(self) -> None:
        """Finish the pending encode and stop the encode thread (idempotent)."""
        self.drain()
        if self._encoder is not None:
            self._encoder.shutdown(wait=True)
            self._encoder = None

    def close(self) -> None:
        """Finish pending files, then free the backend's models and device caches."""
        self.shutdown()
        self._backend.close()

    def execute(
        self,
        job: RenderJob,
        on_chunk: ChunkCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> JobOutcome:
        """Render and write `job`; returns when its files are complete (see `submit`)."""
        return self.submit(job, on_chunk, should_stop, overlap=False).result()

    def _remove_partials(self, job: RenderJob) -> None:
        """Temporaries left by an earlier attempt of this job that was killed (SIGKILL skips `finally`).
        Only this job's own targets: another worker's in-flight temporaries are never touched."""
        for target in (self._layout.video(job), self._layout.thumbnail(job), self._layout.sidecar(job)):
            for leftover in partials_of(target):
                leftover.unlink(missing_ok=True)
        chunks = self._layout.chunk_dir(job)  # a chained job's chunk files are its own too
        if job.is_chained and chunks.is_dir():
            for leftover in chunks.glob(f".*{PARTIAL_SUFFIX}"):
                leftover.unlink(missing_ok=True)

    def _with_previous_shot(self, job: RenderJob) -> RenderJob:
        """Storyboard (seed 8.7): the previous shot's last frame conditions frame 0 of this shot."""
        generated = self._layout.root / "generated"
        found = [p for p in (generated / f"{job.after}.mp4", generated / f"{job.after}.png") if p.is_file()]
        if not found:
            raise FileNotFoundError(
                f"previous shot {job.after} has no output in {generated}; rerun the scene"
            )
        png = self._layout.conditioning(job)
        write_png(png, read_last_frame(found[0]))
        condition = ImageCondition(path=str(png), frame_idx=0, strength=1.0)
        return dataclasses.replace(job, images=(condition, *job.images))

    def _render_single(self, job: RenderJob) -> tuple[RenderResult, float]:
        t0 = time.perf_counter()
        result = self._backend.render(RenderRequest(job=job))
        return result, time.perf_counter() - t0

    def _encode_single(self, job: RenderJob, result: RenderResult, render_s: float) -> dict[str, Any]:
        """Output files for one rendered window; the sidecar last. Touches no model (safe on a thread)."""
        t1 = time.perf_counter()
        out = self._layout.video(job)
        if job.mode is RenderMode.IMAGE:
            write_png(out, result.frames[0])
            frames = 1
        else:
            info = write_mp4(
                out,
                result.frames,
                result.frame_rate,
                audio=result.audio if job.audio else None,
                sample_rate=result.sample_rate if job.audio else None,
                crf=self._crf,
            )
            frames = info.frame_count
        write_thumbnail(self._layout.thumbnail(job), result.frames[0], width=self._thumb_width)
        encode_s = time.perf_counter() - t1
        return self._finish(job, result, frames, render_s, encode_s, ())

    def _execute_chained(
        self, job: RenderJob, on_chunk: ChunkCallback | None, should_stop: StopCheck | None
    ) -> dict[str, Any]:
        plan = plan_chunks(
            job.num_frames,
            job.chunking.chunk_frames,
            job.chunking.overlap_frames,
            self._backend.temporal_scale,
        )
        chained = run_chained(
            self._backend,
            job,
            plan,
            self._layout,
            on_chunk=(lambda outcome: on_chunk(job, outcome)) if on_chunk else None,
            should_stop=should_stop,
        )
        t1 = time.perf_counter()
        out = self._layout.video(job)
        info = chained.write(out, crf=self._crf)
        write_thumbnail(self._layout.thumbnail(job), chained.first_frame, width=self._thumb_width)
        encode_s = time.perf_counter() - t1
        finished = self._finish(
            job, chained.last_result, info.frame_count, chained.render_s, encode_s, chained.chunks
        )
        # Decoded chunk frames are removed by the driver once the done row is durable (a crash before it
        # would otherwise leave a job that is neither recorded done nor resumable from its chunks).
        return finished

    def _finish(
        self,
        job: RenderJob,
        result: RenderResult,
        frames: int,
        render_s: float,
        encode_s: float,
        chunks: tuple[ChunkOutcome, ...],
    ) -> dict[str, Any]:
        sidecar = self._layout.sidecar(job)
        payload = {
            "job_id": job.job_id,
            "name": job.name,
            "params": canonical_json(job),
            "tags": dict(job.tags),
            "frames_written": frames,
            "duration_s": frames / job.frame_rate,
            "output": os.path.relpath(self._layout.video(job), self._layout.root),
            "thumbnail": os.path.relpath(self._layout.thumbnail(job), self._layout.root),
            "timings": {"render_s": render_s, "encode_s": encode_s, **result.timings},
            "backend": result.info,
            "chunks": [chunk.as_dict() for chunk in chunks],
            **self._run_info,
        }
        write_sidecar(sidecar, payload)  # last: its presence marks the job's files complete
        return {
            "output_path": str(self._layout.video(job)),
            "thumbnail_path": str(self._layout.thumbnail(job)),
            "sidecar_path": str(sidecar),
            "frames_written": frames,
            "duration_s": frames / job.frame_rate,
            "render_s": render_s,
            "encode_s": encode_s,
            "device": str(result.info.get("device", "")),
            "memory_policy": str(result.info.get("memory_policy", "")),
            "phases": dict(result.timings),
            "chunks": chunks,
        }


def overlapped_decode_is_shorter(denoise: float, decode: float, encode: float) -> bool:
    """Steady-state cycle with the decode on the encode thread, max(denoise, decode + encode), against the
    decode in line, max(denoise + decode, encode): e.g. a GPU decode of 1.6 s beside a 9.9 s denoise and a
    7.5 s CPU encode (H200, 1536x1024x121) gains; beside a 3 s denoise and a 12 s encode it loses."""
    return max(denoise, decode + encode) <= max(denoise + decode, encode)


def _cycle(outcome: dict[str, Any]) -> tuple[float, float, float]:
    """(denoise, decode, encode) seconds of a finished one-window job, from its render timings."""
    phases = outcome["phases"]
    decode = phases.get("decode_video", 0.0) + phases.get("decode_audio", 0.0)
    return max(outcome["render_s"] - decode, 0.0), decode, outcome["encode_s"]


def _done(outcome: JobOutcome) -> Future[JobOutcome]:
    future: Future[JobOutcome] = Future()
    future.set_result(outcome)
    return future
