"""The chaining handoff block: what a chunk takes from the chunk before it (base.LatentHandoff), as the
official conditionings of its stages.

Owns: the handed-off video latents kept clean from latent frame 0 (with a linear fade over the last `blend`
of them: docs/behaviour.md, "Seam smoothing"), the handed-off audio latents as the start of stage 1 and kept
clean in every stage (ltx_pipelines' TemporalRegionMask, as retake.py masks by time), the AdaIN of the new
frames against the first chunk's statistics, and the audio latent rate that converts latent frames to
seconds (what the chaining stage asks the backend for).
Must not: plan chunks (chaining/plan.py), or know which recipes take a handoff (a recipe that cannot
refuses it itself).
"""

from __future__ import annotations

from typing import Any

import torch
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.types import AudioLatentShape, VideoPixelShape
from ltx_pipelines.retake import TemporalRegionMask

from ltx2_batch.backends.base import LatentHandoff
from ltx2_batch.backends.ltx2.recipe import RecipeRun
from ltx2_batch.backends.ltx2.stage import DenoisedAudio


def audio_latents_per_second() -> float:
    """Audio latent frames per second of video time (ltx-core's audio latent grid: 25 for 16 kHz mel,
    hop 160, downsample 4)."""
    return float(AudioLatentShape.from_duration(batch=1, duration=1000.0).frames) / 1000.0


def handoff_video(run: RecipeRun, latent: torch.Tensor | None, handoff: LatentHandoff | None) -> list[Any]:
    """The handed-off video latents (`latent`: the handoff's stage-1 or final tail) kept clean from latent
    frame 0 at the handoff's strength; the last `blend` of them conditioned one by one with a strength
    falling linearly towards 0: a crossfade from the previous chunk into this one."""
    if latent is None or handoff is None:
        return []
    latent = latent.to(device=run.device, dtype=run.dtype)
    hard = latent.shape[2] - handoff.blend
    conds = [VideoConditionByLatentIndex(latent=latent[:, :, :hard], strength=handoff.strength, latent_idx=0)]
    for j in range(handoff.blend):
        fade = handoff.strength * (handoff.blend - j) / (handoff.blend + 1)
        frame = latent[:, :, hard + j : hard + j + 1]
        conds.append(VideoConditionByLatentIndex(latent=frame, strength=fade, latent_idx=hard + j))
    return conds


def handoff_audio(
    run: RecipeRun, shape: VideoPixelShape, handoff: LatentHandoff | None, start: torch.Tensor | None = None
) -> DenoisedAudio:
    """The stage's audio: from `start` (stage 2: stage 1's audio; None: noise), and under an audio handoff
    kept clean over the handed-off duration, which stage 1 starts from (zeros after it: those tokens are
    fully noised, exactly as a start without a handoff)."""
    if handoff is None or handoff.audio is None:
        return DenoisedAudio(initial=start)
    kept_s = handoff.audio.shape[2] / audio_latents_per_second()
    horizon = 2.0 * shape.frames / shape.fps + 1.0  # past the end of the window: regenerate the rest
    kept = (TemporalRegionMask(start_time=kept_s, end_time=horizon, fps=shape.fps),)
    if start is None:
        expected = AudioLatentShape.from_video_pixel_shape(shape)
        tail = handoff.audio.to(device=run.device, dtype=run.dtype)[:, :, : expected.frames]
        start = torch.zeros(expected.to_torch_shape(), device=run.device, dtype=run.dtype)
        start[:, :, : tail.shape[2]] = tail
    return DenoisedAudio(conditionings=kept, initial=start)


def adain(latent: torch.Tensor, handoff: LatentHandoff | None) -> torch.Tensor:
    """AdaIN against the first chunk: the frames after the handed-off ones get that chunk's per-channel mean
    and std (the handed-off frames are the previous chunk's, left as they are)."""
    if handoff is None or handoff.normalize_to is None:
        return latent
    mean, std = (t.to(device=latent.device, dtype=latent.dtype) for t in handoff.normalize_to)
    k = handoff.stage1.shape[2]
    new = latent[:, :, k:]
    own_mean = new.mean(dim=(0, 2, 3, 4), keepdim=True)
    own_std = new.std(dim=(0, 2, 3, 4), keepdim=True, correction=0).clamp_min(1e-6)
    out = latent.clone()
    out[:, :, k:] = (new - own_mean) / own_std * std.view(1, -1, 1, 1, 1) + mean.view(1, -1, 1, 1, 1)
    return out
