"""Drive a backend through a ChunkPlan: latent handoff between chunks, per-chunk files, resume, stitch.

Each finished chunk leaves two files, written atomically: its latents (safetensors: `stage1`, `final`) and
its kept frames and audio (npz, the overlap already trimmed). A rerun loads the chunks that exist and
renders only the missing ones, so a crash costs at most one chunk. Stitching streams the kept frames into
one encoder (frame exact by construction) and cuts the audio at the same frame boundaries in samples.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltx2_batch.backends.base import LatentHandoff, RenderBackend, RenderRequest, RenderResult
from ltx2_batch.chaining.plan import ChunkPlan, ChunkRange, audio_sample_range
from ltx2_batch.errors import FatalBackendError, JobCancelledError
from ltx2_batch.jobs import ImageCondition, RenderJob, RenderMode
from ltx2_batch.layout import OutputLayout
from ltx2_batch.media.write import Mp4Writer, atomic_target, write_png
from ltx2_batch.outcome import ChunkOutcome, OutcomeStatus


@dataclass
class ChainedResult:
    job: RenderJob
    plan: ChunkPlan
    layout: OutputLayout
    chunks: tuple[ChunkOutcome, ...]
    render_s: float
    first_frame: np.ndarray
    last_result: RenderResult

    def write(self, path: Path, crf: int = 18) -> Any:
        """Stitch the kept frames of every chunk into `path`; audio cut at the same boundaries."""
        audio_parts: list[np.ndarray] = []
        sample_rate: int | None = None
        with Mp4Writer(path, self.job.frame_rate, crf=crf) as writer:
            for chunk in self.chunks:
                with np.load(chunk.media_path) as data:
                    writer.write_frames(data["frames"])
                    if self.job.audio and "audio" in data:
                        audio_parts.append(data["audio"])
                        sample_rate = int(data["sample_rate"])
            if audio_parts and sample_rate:
                writer.set_audio(np.concatenate(audio_parts, axis=1), sample_rate)
        return writer.info


def _atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


def _atomic_save_latents(path: Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items() if v is not None}, str(tmp))


def load_chunk_latents(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _chunk_images(job: RenderJob, plan: ChunkPlan, chunk: ChunkRange) -> tuple[ImageCondition, ...]:
    """The job's images that fall in this chunk (moved to chunk-local frames), plus the chunk's own."""
    own = job.chunk_images[chunk.index] if chunk.index < len(job.chunk_images) else ()
    mapped = []
    for image in job.images:
        if chunk.output_start <= image.frame_idx < chunk.output_end:
            local = chunk.keep_start + image.frame_idx - chunk.output_start
            mapped.append(dataclasses.replace(image, frame_idx=local))
    return (*mapped, *own)


def chunk_job(
    job: RenderJob, plan: ChunkPlan, chunk: ChunkRange, extra: tuple[ImageCondition, ...]
) -> RenderJob:
    """The single-window job a chunk renders (same model state as the parent job)."""
    prompt = job.chunk_prompts[chunk.index] if chunk.index < len(job.chunk_prompts) else job.prompt
    return dataclasses.replace(
        job,
        prompt=prompt,
        num_frames=chunk.num_frames,
        seed=job.seed + chunk.index,
        images=_chunk_images(job, plan, chunk) + extra,
        mode=RenderMode.VIDEO,
        chunk_prompts=(),
        chunk_images=(),
    )


def _kept_media(result: RenderResult, job: RenderJob, chunk: ChunkRange) -> dict[str, np.ndarray]:
    arrays = {"frames": np.ascontiguousarray(result.frames[chunk.keep_start : chunk.keep_end])}
    if job.audio and result.audio is not None and result.sample_rate:
        start, count, _ = audio_sample_range(chunk, job.frame_rate, result.sample_rate)
        audio = np.asarray(result.audio, dtype=np.float32)[:, start : start + count]
        if audio.shape[1] < count:  # a vocoder may come up a few samples short of the window
            audio = np.pad(audio, ((0, 0), (0, count - audio.shape[1])))
        arrays["audio"] = audio
        arrays["sample_rate"] = np.asarray(result.sample_rate)
    return arrays


def run_chained(
    backend: RenderBackend,
    job: RenderJob,
    plan: ChunkPlan,
    layout: OutputLayout,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ChainedResult:
    outcomes: list[ChunkOutcome] = []
    previous: dict[str, Any] | None = None  # latents of the previous chunk
    last_result: RenderResult | None = None
    first_frame: np.ndarray | None = None
    render_s = 0.0
    rendered_fresh = False  # once a chunk is re-rendered, later chunk files were conditioned on old latents
    for chunk in plan.chunks:
        if should_stop is not None and should_stop():
            raise JobCancelledError(
                f"job {job.name} cancelled before chunk {chunk.index + 1}/{plan.chunk_count}"
            )
        latent_path, media_path = layout.chunk_latent(job, chunk.index), layout.chunk_media(job, chunk.index)
        if not rendered_fresh and latent_path.is_file() and media_path.is_file():
            previous = load_chunk_latents(latent_path)
            outcome = ChunkOutcome(
                chunk.index,
                plan.chunk_count,
                OutcomeStatus.RESUMED,
                str(latent_path),
                str(media_path),
                0.0,
                chunk.kept_frames,
            )
        else:
            extra: tuple[ImageCondition, ...] = ()
            handoff = None
            if chunk.index > 0 and previous is not None:
                k = chunk.handoff_latent_frames
                final = previous.get("final")
                handoff = LatentHandoff(
                    stage1=previous["stage1"][:, :, -k:],
                    final=final[:, :, -k:] if final is not None else None,
                )
                if job.chunking.condition_on_last_frame:
                    extra = (_last_frame_condition(layout, job, chunk, plan),)
            t0 = time.perf_counter()
            result = backend.render(RenderRequest(job=chunk_job(job, plan, chunk, extra), handoff=handoff))
            elapsed = time.perf_counter() - t0
            render_s += elapsed
            _atomic_save_npz(media_path, **_kept_media(result, job, chunk))
            previous = {"stage1": result.stage1_latent, "final": result.final_latent}
            _atomic_save_latents(latent_path, previous)  # last: marks the chunk complete
            last_result = result
            rendered_fresh = True
            outcome = ChunkOutcome(
                chunk.index,
                plan.chunk_count,
                OutcomeStatus.DONE,
                str(latent_path),
                str(media_path),
                elapsed,
                chunk.kept_frames,
            )
        if first_frame is None:
            with np.load(media_path) as data:
                first_frame = np.array(data["frames"][0])
        outcomes.append(outcome)
        if on_chunk is not None:
            on_chunk(outcome)
    if last_result is None:  # every chunk resumed: describe the output without rendering
        last_result = RenderResult(frames=None, frame_rate=job.frame_rate, info={"resumed": True})
    if first_frame is None:
        raise FatalBackendError(f"job {job.name}: the chunk plan was empty")
    return ChainedResult(job, plan, layout, tuple(outcomes), render_s, first_frame, last_result)


def _last_frame_condition(
    layout: OutputLayout, job: RenderJob, chunk: ChunkRange, plan: ChunkPlan
) -> ImageCondition:
    """`chaining.condition_on_last_frame`: the previous chunk's last frame as an image condition.

    It is placed where that frame lands in the new chunk (the end of the trimmed overlap), not at frame 0,
    which the latent handoff already fixes.
    """
    with np.load(layout.chunk_media(job, chunk.index - 1)) as data:
        last = np.array(data["frames"][-1])
    png = layout.chunk_last_frame(job, chunk.index - 1)
    write_png(png, last)
    return ImageCondition(path=str(png), frame_idx=chunk.keep_start - 1, strength=1.0)
