"""Pure chunk arithmetic for chained (longer than one window) jobs.

The rules: docs/behaviour.md, "Chunk arithmetic and quantum alignment".

A long video is rendered as overlapping windows. Chunk i > 0 is conditioned on the last
`latent_slice_count` latent frames of chunk i-1, placed at its latent frame 0; those latent frames decode to
exactly `effective_overlap` pixel frames (the first latent frame of a causal VAE is one pixel frame, each
later one is `temporal_scale` frames), which are trimmed from the start of chunk i. That is the "quantum
alignment": the overlap that is actually trimmed is the requested overlap rounded up to the latent grid.

Nothing here knows torch or a model: the temporal scale is passed in (the backend reads it from the VAE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltx2_batch.errors import ConfigError


@dataclass(frozen=True)
class LatentAlignment:
    """The requested overlap on the latent grid: latent frames handed on, and the pixel frames they make."""

    requested_overlap: int
    temporal_scale: int
    latent_slice_count: int  # latent frames handed to the next chunk
    effective_overlap: int  # pixel frames those latent frames decode to = frames trimmed per later chunk


@dataclass(frozen=True)
class ChunkRange:
    """One window. Local frame indices are inclusive-start, exclusive-end; so are output indices."""

    index: int
    num_frames: int  # frames this chunk renders (8k+1)
    keep_start: int  # first local frame kept (effective_overlap for chunks after the first, else 0)
    keep_end: int  # local end of the kept frames (< num_frames only for a last chunk rounded up)
    output_start: int  # where the kept frames land in the stitched video
    handoff_latent_frames: int  # latent frames taken from the previous chunk (0 for the first)

    @property
    def kept_frames(self) -> int:
        """Frames of this chunk that go into the stitched video."""
        return self.keep_end - self.keep_start

    @property
    def output_end(self) -> int:
        """Where this chunk's kept frames end in the stitched video (exclusive)."""
        return self.output_start + self.kept_frames


@dataclass(frozen=True)
class ChunkPlan:
    """A chained job's windows, in render order, and the alignment every handoff between them uses."""

    total_frames: int
    chunk_frames: int
    alignment: LatentAlignment
    chunks: tuple[ChunkRange, ...]

    @property
    def chunk_count(self) -> int:
        """How many windows the job renders."""
        return len(self.chunks)


def latent_alignment(overlap_frames: int, temporal_scale: int) -> LatentAlignment:
    """`latent_slice_count = ceil((overlap - 1) / t) + 1`, `effective = (count - 1) * t + 1`
    (docs/behaviour.md, "Chunk arithmetic and quantum alignment")."""
    if overlap_frames < 1:
        raise ConfigError(f"chaining.overlap_frames must be >= 1, got {overlap_frames}")
    if temporal_scale < 1:
        raise ConfigError(f"temporal scale must be >= 1, got {temporal_scale}")
    count = math.ceil((overlap_frames - 1) / temporal_scale) + 1
    return LatentAlignment(
        requested_overlap=overlap_frames,
        temporal_scale=temporal_scale,
        latent_slice_count=count,
        effective_overlap=(count - 1) * temporal_scale + 1,
    )


def round_up_frames(frames: int, temporal_scale: int) -> int:
    """Smallest legal frame count (t*k + 1) that is >= frames."""
    return math.ceil(max(frames - 1, 0) / temporal_scale) * temporal_scale + 1


def plan_chunks(total_frames: int, chunk_frames: int, overlap_frames: int, temporal_scale: int) -> ChunkPlan:
    """Split `total_frames` into windows so the stitched result has exactly `total_frames` frames."""
    if chunk_frames < 1 or (chunk_frames - 1) % temporal_scale:
        raise ConfigError(f"chaining.chunk_frames must be {temporal_scale}k+1 (e.g. 121), got {chunk_frames}")
    alignment = latent_alignment(overlap_frames, temporal_scale)
    trim = alignment.effective_overlap
    if trim >= chunk_frames:
        raise ConfigError(
            f"chaining.overlap_frames={overlap_frames} aligns to {trim} frames, which leaves no new frames "
            f"in a {chunk_frames}-frame chunk; use an overlap below {chunk_frames - temporal_scale}"
        )
    if total_frames <= chunk_frames:
        only = ChunkRange(0, total_frames, 0, total_frames, 0, 0)
        return ChunkPlan(total_frames, chunk_frames, alignment, (only,))

    chunks = [ChunkRange(0, chunk_frames, 0, chunk_frames, 0, 0)]
    produced = chunk_frames
    while produced < total_frames:
        needed = total_frames - produced
        new_frames = min(needed, chunk_frames - trim)
        rendered = min(chunk_frames, round_up_frames(trim + new_frames, temporal_scale))
        chunks.append(
            ChunkRange(
                index=len(chunks),
                num_frames=rendered,
                keep_start=trim,
                keep_end=trim + new_frames,
                output_start=produced,
                handoff_latent_frames=alignment.latent_slice_count,
            )
        )
        produced += new_frames
    return ChunkPlan(total_frames, chunk_frames, alignment, tuple(chunks))


@dataclass(frozen=True)
class AudioHandoff:
    """Which audio latent frames of the previous chunk cover a chunk's overlap: `[start, start + count)` of
    the previous chunk's audio latents become frames `[0, count)` of this chunk's, kept clean."""

    start: int
    count: int


def audio_handoff(
    previous: ChunkRange, chunk: ChunkRange, frame_rate: float, latents_per_second: float
) -> AudioHandoff | None:
    """The audio part of the latent handoff (docs/behaviour.md, "Chunk arithmetic and quantum alignment").

    Chunk i's frame 0 is chunk i-1's frame `previous.num_frames - chunk.keep_start` (the overlap the video
    latents hand over), so its audio starts that many seconds into chunk i-1's audio. The handoff is the
    whole audio latent frames inside the overlap; the start is rounded to the audio latent grid (exact for
    121-frame windows at 24 fps: 96 frames = 4 s = 100 audio latent frames at 25 per second).
    """
    if chunk.index == 0 or chunk.keep_start == 0:
        return None
    start = round((previous.num_frames - chunk.keep_start) / frame_rate * latents_per_second)
    total = round(previous.num_frames / frame_rate * latents_per_second)  # ltx-core's audio latent length
    count = min(math.floor(chunk.keep_start / frame_rate * latents_per_second), total - start)
    return AudioHandoff(start, count) if count > 0 else None


def audio_sample_range(chunk: ChunkRange, frame_rate: float, sample_rate: int) -> tuple[int, int, int]:
    """(local start sample, sample count, output start sample) for a chunk's kept audio.

    Boundaries are rounded from global frame positions so chunk lengths add up to exactly
    round(total_frames / fps * sr): no drift, no gap, however many chunks.
    """
    per_frame = sample_rate / frame_rate
    out_start = round(chunk.output_start * per_frame)
    out_end = round(chunk.output_end * per_frame)
    local_start = round(chunk.keep_start * per_frame)
    return local_start, out_end - out_start, out_start
