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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltx2_batch.backends.base import LatentHandoff, RenderBackend, RenderRequest, RenderResult
from ltx2_batch.chaining.plan import ChunkPlan, ChunkRange, audio_handoff, audio_sample_range
from ltx2_batch.chaining.state import channel_stats, load_chunk_state, save_chunk_state, stored_audio
from ltx2_batch.core.jobs import ImageCondition, RenderJob, RenderMode
from ltx2_batch.core.outcome import ChunkOutcome, OutcomeStatus
from ltx2_batch.errors import FatalBackendError, JobCancelledError
from ltx2_batch.media.probe import MediaInfo, VideoCount, read_frames, read_last_frame
from ltx2_batch.media.write import Mp4Writer, write_lossless_frames, write_png
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.worker.overlap import EncodeQueue


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
            kept = frames()
            self._writer.write_frames(kept)
            if audio is not None:
                self._writer.write_audio(*audio)
            if store is not None:
                store(kept)

        self._queue.submit(task)

    def wait(self) -> None:
        self._queue.drain()

    def finish(self) -> MediaInfo:
        self._queue.shutdown()
        self._writer.__exit__(None, None, None)
        if self._writer.info is None:
            raise FatalBackendError(f"{self._writer.path}: the stitched file was not verified")
        return self._writer.info

    def abort(self, exc: BaseException) -> None:
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
) -> ChainedResult:
    """Render (or resume) every chunk and stitch them into `layout.video(job)`.

    The last chunk's resume state is stored only when `keep_chunks` asks for the chunk files: without it
    the state would be deleted moments later, once the job's file is done, and writing it is on the
    job's critical path (nothing renders meanwhile). A crash in that window costs one chunk's render on
    the rerun, which gives the same bytes (it is conditioned on the stored state of the chunk before).
    """
    stitch = _Stitch(layout.video(job), job.frame_rate, crf, count)
    try:
        result = _run_chunks(backend, job, plan, layout, stitch, on_chunk, should_stop, keep_chunks)
    except BaseException as exc:
        stitch.abort(exc)
        raise
    return result


def _run_chunks(  # noqa: PLR0915 - one chunk loop (resume or render, then stitch); its state spans both
    backend: RenderBackend,
    job: RenderJob,
    plan: ChunkPlan,
    layout: OutputLayout,
    stitch: _Stitch,
    on_chunk: Callable[[ChunkOutcome], None] | None,
    should_stop: Callable[[], bool] | None,
    keep_chunks: bool,
) -> ChainedResult:
    chain = _Chain()
    outcomes: list[ChunkOutcome] = []
    waiting: ChunkOutcome | None = None  # rendered, its files being written on the stitch thread
    last_info: dict[str, Any] = {"resumed": True}  # every chunk resumed: nothing rendered in this attempt
    phases: dict[str, float] = {}
    first_frame: np.ndarray | None = None
    render_s = 0.0

    def report(outcome: ChunkOutcome) -> None:
        """A chunk whose resume state is on disk (its size is measured now)."""
        paths = [Path(p) for p in (outcome.latent_path, outcome.media_path) if p]
        outcome = dataclasses.replace(outcome, resume_bytes=sum(_size(p) for p in paths))
        outcomes.append(outcome)
        if on_chunk is not None:
            on_chunk(outcome)

    for chunk in plan.chunks:
        if should_stop is not None and should_stop():
            raise JobCancelledError(
                f"job {job.name} cancelled before chunk {chunk.index + 1}/{plan.chunk_count}"
            )
        sub_job = chunk_job(job, chunk, ())
        state_path, frames_path = layout.chunk_latent(job, chunk.index), layout.chunk_media(job, chunk.index)
        if not chain.rendered_fresh and state_path.is_file() and frames_path.is_file():
            chain.latents = load_chunk_state(state_path)
            if chunk.index == 0 and job.chunking.adain:
                chain.reference = channel_stats(chain.latents["final"])
            chain.last_frame = read_last_frame(frames_path)
            if first_frame is None:
                first_frame = read_frames(frames_path, 0, 1)[0]
            audio = stored_audio(chain.latents)
            stitch.feed(functools.partial(read_frames, frames_path), audio)
            report(_outcome(chunk, plan, sub_job, OutcomeStatus.RESUMED, 0.0, state_path, frames_path))
            continue
        handoff, extra = _handoff(backend, job, plan, chunk, chain, layout)
        t0 = time.perf_counter()
        result = backend.render(RenderRequest(job=chunk_job(job, chunk, extra), handoff=handoff))
        elapsed = time.perf_counter() - t0
        render_s += elapsed
        kept = np.ascontiguousarray(result.frames[chunk.keep_start : chunk.keep_end])
        audio = _kept_audio(result, job, chunk)
        latents = {"stage1": result.stage1_latent, "final": result.final_latent, "audio": result.audio_latent}
        reference = channel_stats(result.final_latent) if chunk.index == 0 and job.chunking.adain else None
        chain = _Chain(latents, reference or chain.reference, kept[-1], rendered_fresh=True)
        first_frame = kept[0] if first_frame is None else first_frame
        last_info = {k: v for k, v in result.info.items() if k != "prompt"}  # prompts are per chunk
        for phase, seconds in result.timings.items():
            phases[phase] = phases.get(phase, 0.0) + seconds

        def store(  # on the stitch thread, while the next chunk renders
            kept: np.ndarray,
            latents: dict[str, Any] = latents,
            audio: Any = audio,
            paths: tuple[Path, Path] = (state_path, frames_path),
        ) -> None:
            write_lossless_frames(paths[1], kept)
            save_chunk_state(paths[0], latents, audio)  # last: marks it complete

        stored = keep_chunks or chunk.index < plan.chunk_count - 1
        # waits for the chunk before: complete now
        stitch.feed(_in_memory(kept), audio, store if stored else None)
        if waiting is not None:
            report(waiting)
        waiting = _outcome(
            chunk, plan, sub_job, OutcomeStatus.DONE, elapsed, state_path, frames_path, handoff, stored
        )
    t_tail = time.perf_counter()
    stitch.wait()
    if waiting is not None:
        report(waiting)
    info = stitch.finish()
    if first_frame is None:
        raise FatalBackendError(f"job {job.name}: the chunk plan was empty")
    summary = RenderResult(frames=None, frame_rate=job.frame_rate, timings=phases, info=last_info)
    tail_s = time.perf_counter() - t_tail
    return ChainedResult(info, tuple(outcomes), render_s, first_frame, summary, tail_s)


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
