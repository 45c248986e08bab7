"""The upsampling block: the official `upsample_video` with the spatial upsampler of the job's scale
(between a two-stage recipe's stages), or the temporal one (after the last stage, doubling frames and rate).

Owns: which upsampler a job's upscale spec asks for, and the frame rate a temporal upsampling implies.
Must not: denoise, or decide whether a recipe refines (the recipes call it).
"""

from __future__ import annotations

import torch
from ltx_core.model.upsampler import upsample_video
from ltx_core.types import VideoPixelShape

from ltx2_batch.backends.ltx2.recipe import RecipeRun


def stage1_shape(run: RecipeRun) -> VideoPixelShape:
    """Stage 1's pixel shape: the job's size, divided by the spatial scale when a full-size stage follows."""
    job = run.job
    scale = job.upscale.spatial_scale if job.upscale.spatial else 1
    return VideoPixelShape(
        batch=1,
        frames=job.num_frames,
        width=round(job.width / scale),
        height=round(job.height / scale),
        fps=job.frame_rate,
    )


def full_shape(run: RecipeRun) -> VideoPixelShape:
    """The job's own pixel shape (a refinement stage's, or a one-stage recipe's at the source's size)."""
    job = run.job
    return VideoPixelShape(
        batch=1, frames=job.num_frames, width=job.width, height=job.height, fps=job.frame_rate
    )


def spatial_upsample(run: RecipeRun, latent: torch.Tensor, video_encoder: object) -> torch.Tensor:
    """Stage 1's latent at the full size's latent grid (the upsampler of the job's spatial scale)."""
    with run.clock("upsample"):
        return upsample_video(
            latent=latent[:1],
            video_encoder=video_encoder,
            upsampler=run.models.spatial_upsampler(run.job.upscale.spatial_scale),
        )


def temporal_upsample(
    run: RecipeRun, latent: torch.Tensor, video_encoder: object
) -> tuple[torch.Tensor, float]:
    """What to decode and at which rate: `latent` as it is, or (upscale.temporal) with twice the frames at
    twice the rate. The handoff grid stays the generation grid: only the decode sees the upsampled latent."""
    if not run.job.upscale.temporal:
        return latent, run.job.frame_rate
    with run.clock("upsample"):
        doubled = upsample_video(
            latent=latent[:1], video_encoder=video_encoder, upsampler=run.models.temporal_upsampler()
        )
    return doubled, run.job.frame_rate * 2
