"""The per-chunk fields of a chained job: `chunk_prompts` (one prompt per chunk) and `chunk_images` (each
chunk's conditioning images, frame indices counted within that chunk).

Owns their rules: they apply only to chained jobs, there are no more entries than chunks, and a chunk's
image lies on a frame that chunk renders. Chunks are counted by the chaining planner itself, so
validation and execution agree on them. Must not plan more than the job asks for: the caller has
already clamped the frame count to `limits.max_num_frames`, which bounds the plan.
"""

from __future__ import annotations

from ltx2_batch.chaining.plan import plan_chunks
from ltx2_batch.core.jobs import ChunkingSpec, ImageCondition, RenderMode
from ltx2_batch.manifest.limits import text_problem
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import FieldReader
from ltx2_batch.manifest.sections import images as read_images
from ltx2_batch.manifest.select import LTX2_TEMPORAL_SCALE, chunk_count
from ltx2_batch.manifest.values import type_name

ChunkImages = tuple[tuple[ImageCondition, ...], ...]


def chunk_rules(
    reader: FieldReader, mode: RenderMode, num_frames: int, chunking: ChunkingSpec
) -> tuple[tuple[str, ...], ChunkImages]:
    """(chunk_prompts, chunk_images) of a job rendering `num_frames` as `mode`; empty when it has none."""
    prompts, images = reader.fields.get("chunk_prompts"), reader.fields.get("chunk_images")
    if prompts is None and images is None:
        return (), ()
    if mode is not RenderMode.CHAINED:
        for key in ("chunk_prompts", "chunk_images"):
            if reader.fields.get(key) is not None:
                reader.report(
                    key,
                    f"only applies to chained jobs (ti2vid/distilled, num_frames > "
                    f"{chunking.chunk_frames}); this job renders as {mode.value}",
                )
        return (), ()
    chunks = chunk_count(num_frames, chunking.chunk_frames, chunking.overlap_frames)
    out_prompts = _chunk_prompts(reader, prompts, chunks) if prompts is not None else ()
    out_images = _chunk_images(reader, images, chunks, num_frames, chunking) if images is not None else ()
    return out_prompts, out_images


def _chunk_prompts(reader: FieldReader, prompts: object, chunks: int) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
        reader.report("chunk_prompts", f"must be a list of non-empty strings, got {quote(prompts)}")
    else:
        out = tuple(prompts)
        for i, text in enumerate(out):
            problem = text_problem(text, reader.ctx.limits)
            if problem:
                reader.report(f"chunk_prompts[{i}]", problem)
    if isinstance(prompts, list) and len(prompts) > chunks:
        reader.report("chunk_prompts", f"has {len(prompts)} entries but the job has only {chunks} chunks")
    return out


def _chunk_images(
    reader: FieldReader, images: object, chunks: int, num_frames: int, chunking: ChunkingSpec
) -> ChunkImages:
    entries: list[object] = images if isinstance(images, list) else []
    if not isinstance(images, list):
        reader.report(
            "chunk_images", f"must be a list (one list of images per chunk), got {type_name(images)}"
        )
    if len(entries) > chunks:
        reader.report("chunk_images", f"has {len(entries)} entries but the job has only {chunks} chunks")
    plan = plan_chunks(num_frames, chunking.chunk_frames, chunking.overlap_frames, LTX2_TEMPORAL_SCALE)
    out = []
    for c, chunk in enumerate(entries):
        conds = read_images(reader, f"chunk_images[{c}]", chunk)
        rendered = plan.chunks[c].num_frames if c < plan.chunk_count else chunking.chunk_frames
        for i, im in enumerate(conds):
            reader.in_range(
                f"chunk_images[{c}][{i}].frame_idx",
                im.frame_idx,
                0,
                rendered - 1,
                f"must be a frame of chunk {c} (it renders {rendered} frames),",
            )
        out.append(conds)
    return tuple(out)
