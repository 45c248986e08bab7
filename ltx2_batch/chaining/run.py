"""Drive a backend through a ChunkPlan: latent handoff (picture and sound), resume state, streaming stitch.

Each rendered chunk leaves its resume state, written atomically on the stitch thread: its kept frames stored
bit-exactly and compactly (lossless RGB H.264, `chunk_<i>.mkv`) and then its latents (`chunk_<i>.safetensors`:
`stage1`, `final`, the final `audio` latents, and the kept audio samples), which marks the chunk complete. A
rerun loads the chunks that are complete and renders only the rest, so a crash costs at most the chunks in
flight. The next chunk is conditioned on the tail of this chunk's video latents and of its audio latents,
both kept clean (docs/behaviour.md, "Chunk arithmetic and quantum alignment").

The stitch streams: one H.264 encoder for the whole video is fed each chunk's kept frames in order on the
stitch thread while the next chunk renders, so what is left after the last chunk is that chunk's frames, the
audio mux and the check of the finished file. A resumed chunk feeds the encoder from its stored frames, which
are the exact frames it rendered, so a resumed job gives the same file. The audio of every chunk is cut at
the same frame boundaries, in samples, and muxed once.
Must not: decide where the job's files go (OutputLayout) or write the ledger (`on_chunk` reports chunks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltx2_batch.backends.base import LatentHandoff, RenderBackend, RenderRequest, RenderResult
from ltx2_batch.chaining.plan import ChunkPlan, ChunkRange, audio_handoff, audio_sample_range
from ltx2_batch.chaining.state import (
    ChunkPaths,
    ChunkStateError,
    ChunkSync,
    channel_stats,
    discard_from,
    load_chunk,
    store_chunk,
)
from ltx2_batch.core.jobs import ImageCondition, RenderJob, RenderMode
from ltx2_batch.core.outcome import ChunkOutcome, OutcomeStatus
from ltx2_batch.errors import FatalBackendError, JobCancelledError
from ltx2_batch.media.probe import MediaInfo, VideoCount, read_frames, read_last_frame
from ltx2_batch.media.write import Mp4Writer, write_png
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.worker.overlap import EncodeQueue

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainedResult:
    """A stitched chained job: the verified file, its chunks, and what the sidecar says about the render."""

    info: MediaInfo
    chunks: tuple[ChunkOutcome, ...]
    render_s: float  # the chunks' renders, summed
    first_frame: np.ndarray
    summary: (
        RenderResult  # for the sidecar: phase seconds summed over the chunks, the last render's backend info
    )
    stitch_tail_s: float  # after the last render: its frames, the audio mux and the file check


def _chunk_images(job: RenderJob, chunk: ChunkRange) -> tuple[ImageCondition, ...]:
    """The job's images that fall in this chunk (moved to chunk-local frames), plus the chunk's own."""
    own = job.chunk_images[chunk.index] if chunk.index < len(job.chunk_images) else ()
    mapped = []
    for image in job.images:
        if chunk.output_start <= image.frame_idx < chunk.output_end:
            local = chunk.keep_start + image.frame_idx - chunk.output_start
            mapped.append(dataclasses.replace(image, frame_idx=local))
    return (*mapped, *own)


def chunk_job(job: RenderJob, chunk: ChunkRange, extra: tuple[ImageCondition, ...]) -> RenderJob:
    """The single-window job a chunk renders (same model state as the parent job)."""
    prompt = job.chunk_prompts[chunk.index] if chunk.index < len(job.chunk_prompts) else job.prompt
    return dataclasses.replace(
        job,
        prompt=prompt,
        num_frames=chunk.num_frames,
        seed=job.seed + chunk.index,
        images=_chunk_images(job, chunk) + extra,
        mode=RenderMode.VIDEO,
        chunk_prompts=(),
        chunk_images=(),
    )


def _kept_audio(result: RenderResult, job: RenderJob, chunk: ChunkRange) -> tuple[np.ndarray, int] | None:
    if not (job.audio and result.audio is not None and result.sample_rate):
        return None
    start, count, _ = audio_sample_range(chunk, job.frame_rate, result.sample_rate)
    audio = np.asarray(result.audio, dtype=np.float32)[:, start : start + count]
    if audio.shape[1] < count:  # a vocoder may come up a few samples short of the window
        audio = np.pad(audio, ((0, 0), (0, count - audio.shape[1])))
    return audio, int(result.sample_rate)


@dataclass
class _Chain:
    """The state carried from chunk to chunk."""

    latents: dict[str, Any] | None = None  # the previous chunk's stage1/final/audio latents
    reference: tuple[Any, Any] | None = None  # chaining.adain: the first chunk's per-channel latent mean/std
    last_frame: np.ndarray | None = None  # the previous chunk's last kept frame
    # once a chunk is re-rendered, later chunk files were conditioned on old ones: render those too
    rendered_fresh: bool = False


class _Stitch:
    """The one encoder of the job's file (and one for its audio), fed in chunk order on its own thread (one
    chunk in flight): when the last chunk has rendered, only its own frames and sound are left to encode."""

    def __init__(self, path: Path, frame_rate: float, crf: int, count: VideoCount) -> None:
        # exited in finish() or abort()
        self._writer = Mp4Writer(path, frame_rate, crf=crf, count=count).__enter__()
        self._queue = EncodeQueue()

    def feed(
        self,
        frames: Callable[[], np.ndarray],
        audio: tuple[np.ndarray, int] | None,
        store: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """On the thread: hand the chunk's kept frames and its sound to the encoders (separate ffmpeg
        processes, which encode them meanwhile), then `store` its resume state."""

        def task() -> None:
            """Encode the kept frames and sound, then store the resume state, which completes the chunk."""
            kept = frames()
            self._writer.write_frames(kept)
            if audio is not None:
                self._writer.write_audio(*audio)
            if store is not None:
                store(kept)

        self._queue.submit(task)

    def wait(self) -> None:
        """Wait until the chunk in flight is encoded and stored."""
        self._queue.drain()

    def finish(self) -> MediaInfo:
        """Close the encoders; the verified file's media info (FatalBackendError when it was not verified)."""
        self._queue.shutdown()
        self._writer.__exit__(None, None, None)
        if self._writer.info is None:
            raise FatalBackendError(f"{self._writer.path}: the stitched file was not verified")
        return self._writer.info

    def abort(self, exc: BaseException) -> None:
        """Stop the encode thread and close the writer with `exc`: ffmpeg is killed, temporaries removed."""
        with contextlib.suppress(Exception):
            self._queue.shutdown()
        self._writer.__exit__(type(exc), exc, exc.__traceback__)


def run_chained(
    backend: RenderBackend,
    job: RenderJob,
    plan: ChunkPlan,
    layout: OutputLayout,
    crf: int = 18,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    count: VideoCount = VideoCount.decode,
    keep_chunks: bool = False,
    sync: ChunkSync | None = None,
) -> ChainedResult:
    """Render (or resume) every chunk and stitch them into `layout.video(job)`.

    The last chunk's resume state is stored only when `keep_chunks` asks for the chunk files: without it
    the state would be deleted moments later, once the job's file is done, and writing it is on the
    job's critical path (nothing renders meanwhile). A crash in that window costs one chunk's render on
    the rerun, which gives the same bytes (it is conditioned on the stored state of the chunk before).
    """
    stitch = _Stitch(layout.video(job), job.frame_rate, crf, count)
    try:
        loop = _ChunkLoop(backend, job, plan, layout, stitch, on_chunk, keep_chunks, sync)
        result = _run_chunks(loop, should_stop)
    except BaseException as exc:
        stitch.abort(exc)
        raise
    return result


def _run_chunks(loop: _ChunkLoop, should_stop: Callable[[], bool] | None) -> ChainedResult:
    job, plan = loop.job, loop.plan
    for chunk in plan.chunks:
        if should_stop is not None and should_stop():
            raise JobCancelledError(
                f"job {job.name} cancelled before chunk {chunk.index + 1}/{plan.chunk_count}"
            )
        if loop.chain.rendered_fresh or not loop.resume(chunk):
            loop.render(chunk)
    return loop.finish()


class _ChunkLoop:
    """The state of one chained job's walk over its chunks: what the next chunk is conditioned on, the
    outcomes reported so far, the one chunk whose files are still being written, timings."""

    def __init__(
        self,
        backend: RenderBackend,
        job: RenderJob,
        plan: ChunkPlan,
        layout: OutputLayout,
        stitch: _Stitch,
        on_chunk: Callable[[ChunkOutcome], None] | None,
        keep_chunks: bool,
        sync: ChunkSync | None = None,
    ) -> None:
        self.backend, self.job, self.plan, self.layout, self.stitch = backend, job, plan, layout, stitch
        self.on_chunk, self.keep_chunks, self.sync = on_chunk, keep_chunks, sync
        self.chain = _Chain()
        self.outcomes: list[ChunkOutcome] = []
        self.waiting: ChunkOutcome | None = None  # rendered, its files being written on the stitch thread
        self.last_info: dict[str, Any] = {"resumed": True}  # every chunk resumed: nothing rendered now
        self.phases: dict[str, float] = {}
        self.first_frame: np.ndarray | None = None
        self.render_s = 0.0
        self.t_tail = 0.0
        self.discarded: str | None = None  # why the stored state of the next chunk to render was dropped

    def report(self, outcome: ChunkOutcome) -> None:
        """A chunk whose resume state is on disk (its size is measured now)."""
        paths = [Path(p) for p in (outcome.latent_path, outcome.media_path) if p]
        outcome = dataclasses.replace(outcome, resume_bytes=sum(_size(p) for p in paths))
        self.outcomes.append(outcome)
        if self.on_chunk is not None:
            self.on_chunk(outcome)

    def resume(self, chunk: ChunkRange) -> bool:
        """Feed a stored chunk to the stitch when its state verifies; False when there is none to use (a
        damaged one is discarded with every later chunk, with a warning naming the file)."""
        job, paths = self.job, ChunkPaths.of(self.layout, self.job, chunk.index)
        if not paths.record.is_file():
            return False
        try:
            stored = load_chunk(paths, chunk.kept_frames)
        except ChunkStateError as exc:
            self.discarded = f"stored state discarded, rendered again: {exc}"
            _log.debug("%s: %s", job.name, self.discarded)  # the driver warns, from the chunk row
            discard_from(self.layout, job, chunk.index, self.plan.chunk_count)
            if self.sync is not None:
                self.sync.discarded(job, chunk.index, self.plan.chunk_count)
            return False
        self.chain.latents = stored.latents
        if chunk.index == 0 and job.chunking.adain:
            self.chain.reference = channel_stats(stored.latents["final"])
        self.chain.last_frame = read_last_frame(paths.frames)
        if self.first_frame is None:
            self.first_frame = read_frames(paths.frames, 0, 1)[0]
        self.stitch.feed(functools.partial(read_frames, paths.frames), stored.audio)
        sub_job = chunk_job(job, chunk, ())
        self.report(
            _outcome(chunk, self.plan, sub_job, OutcomeStatus.RESUMED, 0.0, paths.state, paths.frames)
        )
        return True

    def render(self, chunk: ChunkRange) -> None:
        """Render the chunk, hand its kept frames and sound to the stitch and its state to the store."""
        job, plan = self.job, self.plan
        handoff, extra = _handoff(self.backend, job, plan, chunk, self.chain, self.layout)
        t0 = time.perf_counter()
        result = self.backend.render(RenderRequest(job=chunk_job(job, chunk, extra), handoff=handoff))
        elapsed = time.perf_counter() - t0
        self.render_s += elapsed
        kept = np.ascontiguousarray(result.frames[chunk.keep_start : chunk.keep_end])
        audio = _kept_audio(result, job, chunk)
        latents = {"stage1": result.stage1_latent, "final": result.final_latent, "audio": result.audio_latent}
        reference = channel_stats(result.final_latent) if chunk.index == 0 and job.chunking.adain else None
        self.chain = _Chain(latents, reference or self.chain.reference, kept[-1], rendered_fresh=True)
        self.first_frame = kept[0] if self.first_frame is None else self.first_frame
        self.last_info = {k: v for k, v in result.info.items() if k != "prompt"}  # prompts are per chunk
        for phase, seconds in result.timings.items():
            self.phases[phase] = self.phases.get(phase, 0.0) + seconds
        paths = ChunkPaths.of(self.layout, job, chunk.index)
        stored = self.keep_chunks or chunk.index < plan.chunk_count - 1
        store = (
            functools.partial(_store, paths=paths, latents=latents, audio=audio, sync=self.sync)
            if stored
            else None
        )
        self.stitch.feed(_in_memory(kept), audio, store)  # waits for the chunk before: complete now
        if self.waiting is not None:
            self.report(self.waiting)
        sub_job = chunk_job(job, chunk, ())
        outcome = _outcome(
            chunk, plan, sub_job, OutcomeStatus.DONE, elapsed, paths.state, paths.frames, handoff, stored
        )
        self.waiting, self.discarded = dataclasses.replace(outcome, note=self.discarded), None
        self.t_tail = time.perf_counter()

    def finish(self) -> ChainedResult:
        """Wait for the last chunk's frames, close and verify the stitched file."""
        t_tail = self.t_tail or time.perf_counter()
        self.stitch.wait()
        if self.waiting is not None:
            self.report(self.waiting)
        info = self.stitch.finish()
        if self.first_frame is None:
            raise FatalBackendError(f"job {self.job.name}: the chunk plan was empty")
        summary = RenderResult(
            frames=None, frame_rate=self.job.frame_rate, timings=self.phases, info=self.last_info
        )
        tail_s = time.perf_counter() - t_tail
        return ChainedResult(info, tuple(self.outcomes), self.render_s, self.first_frame, summary, tail_s)


def _store(
    kept: np.ndarray,
    paths: ChunkPaths,
    latents: dict[str, Any],
    audio: tuple[np.ndarray, int] | None,
    sync: ChunkSync | None,
) -> None:
    """A rendered chunk's resume state, on the stitch thread while the next chunk renders (and, with a
    `sync`, uploaded there before the chunk is reported)."""
    store_chunk(paths, kept, latents, audio)
    if sync is not None:
        sync.stored(paths)


def _in_memory(frames: np.ndarray) -> Callable[[], np.ndarray]:
    """Frames already rendered, handed to the stitch the way stored frames are (a reader to call)."""
    return lambda: frames


def _handoff(
    backend: RenderBackend,
    job: RenderJob,
    plan: ChunkPlan,
    chunk: ChunkRange,
    chain: _Chain,
    layout: OutputLayout,
) -> tuple[LatentHandoff | None, tuple[ImageCondition, ...]]:
    """What chunk i > 0 is conditioned on: the previous chunk's video latent tail (stage 1 and final), its
    audio latent tail over the overlap, and optionally its last frame."""
    if chunk.index == 0 or chain.latents is None:
        return None, ()
    k = chunk.handoff_latent_frames
    previous = chain.latents
    final = previous.get("final")
    audio = None
    span = audio_handoff(
        plan.chunks[chunk.index - 1], chunk, job.frame_rate, backend.audio_latents_per_second
    )
    if job.audio and span is not None and previous.get("audio") is not None:
        audio = previous["audio"][:, :, span.start : span.start + span.count]
    handoff = LatentHandoff(
        stage1=previous["stage1"][:, :, -k:],
        final=final[:, :, -k:] if final is not None else None,
        audio=audio,
        blend=job.chunking.blend,
        normalize_to=chain.reference,
    )
    extra: tuple[ImageCondition, ...] = ()
    if job.chunking.condition_on_last_frame and chain.last_frame is not None:
        extra = (_last_frame_condition(layout, job, chunk, chain.last_frame),)
    return handoff, extra


def _outcome(
    chunk: ChunkRange,
    plan: ChunkPlan,
    sub_job: RenderJob,
    status: OutcomeStatus,
    render_s: float,
    state_path: Path,
    frames_path: Path,
    handoff: LatentHandoff | None = None,
    stored: bool = True,
) -> ChunkOutcome:
    """`stored`: its resume state was written (not so for the last chunk unless the chunks are kept)."""
    audio = handoff.audio if handoff is not None else None
    return ChunkOutcome(
        index=chunk.index,
        count=plan.chunk_count,
        status=status,
        latent_path=str(state_path) if stored else "",
        media_path=str(frames_path) if stored else "",
        render_s=render_s,
        frames=chunk.kept_frames,
        prompt=sub_job.prompt,
        seed=sub_job.seed,
        handoff_latent_frames=chunk.handoff_latent_frames,
        handoff_audio_frames=int(audio.shape[2]) if audio is not None else 0,
    )


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _last_frame_condition(
    layout: OutputLayout, job: RenderJob, chunk: ChunkRange, last_frame: np.ndarray
) -> ImageCondition:
    """`chaining.condition_on_last_frame`: the previous chunk's last frame as an image condition.

    It is placed where that frame lands in the new chunk (the end of the trimmed overlap), not at frame 0,
    which the latent handoff already fixes.
    """
    png = layout.chunk_last_frame(job, chunk.index - 1)
    write_png(png, last_frame)
    return ImageCondition(path=str(png), frame_idx=chunk.keep_start - 1, strength=1.0)
