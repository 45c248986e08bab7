"""The ic_lora recipe (ltx_pipelines/ic_lora.py): the distilled recipe with an IC-LoRA in stage 1, conditioned
on reference videos; stage 2 runs the plain distilled checkpoint.

Owns: the IC-LoRA plan (stage 1 carries every LoRA given, IC first; stage 2 none), and the reference-video
conditionings of ICLoraPipeline._create_conditionings (no attention mask: strength 1.0), at the downscale
factor the IC-LoRA files declare.
Must not: re-implement a shared block.
"""

from __future__ import annotations

from typing import Any

from ltx_core.conditioning import VideoConditionByReferenceLatent
from ltx_core.types import VideoPixelShape
from ltx_pipelines.ic_lora import _read_lora_reference_downscale_factor
from ltx_pipelines.utils.media_io import load_video_conditioning

from ltx2_batch.backends.ltx2.guidance import distilled_sigmas, unguided
from ltx2_batch.backends.ltx2.recipe import RecipeRun, StageLoras, official_loras
from ltx2_batch.backends.ltx2.staged import Guidance, StagedRecipe
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraKind, LoraSpec, PipelineKind, RenderJob
from ltx2_batch.errors import FatalBackendError


class IcLora(StagedRecipe):
    """The ic_lora `Recipe`: distilled sigmas with the IC-LoRA in stage 1, conditioned on reference videos."""

    kind: PipelineKind = PipelineKind.IC_LORA

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:  # noqa: ARG002 - the Recipe signature; the IC-LoRA comes with the job
        """Stage 1 carries the IC-LoRAs, then the plain ones; stage 2 none. No IC-LoRA: the job is refused."""
        ic = official_loras(loras, LoraKind.IC_LORA)
        if not ic:
            raise FatalBackendError("pipeline=ic_lora needs a LoRA of kind ic_lora")
        return StageLoras((*ic, *official_loras(loras, LoraKind.LORA)), ())

    def first_stage(self, run: RecipeRun, contexts: list[Any], transformer: Any) -> Guidance:
        """The distilled sigmas, unguided, as the official class runs stage 1."""
        return distilled_sigmas(run.device), unguided(contexts[0], transformer)

    def extra_conditionings(self, run: RecipeRun, shape: VideoPixelShape, video_encoder: Any) -> list[Any]:
        """Each reference video, loaded at the stage size over the downscale factor, as a reference latent."""
        job = run.job
        if not job.video_conditioning:
            raise FatalBackendError("pipeline=ic_lora needs at least one video_conditioning reference video")
        factor = _downscale_factor(job)
        if shape.height % factor or shape.width % factor:
            raise FatalBackendError(
                f"{shape.height}x{shape.width} is not divisible by reference scale {factor}"
            )
        conds: list[Any] = []
        for ref in job.video_conditioning:
            video = load_video_conditioning(
                video_path=ref.path,
                height=shape.height // factor,
                width=shape.width // factor,
                frame_cap=job.num_frames,
                dtype=run.dtype,
                device=run.device,
            )
            conds.append(
                VideoConditionByReferenceLatent(
                    latent=video_encoder(video), downscale_factor=factor, strength=ref.strength
                )
            )
        return conds


def _downscale_factor(job: RenderJob) -> int:
    """The reference videos' downscale factor the job's IC-LoRA files declare (absent: 1); they must agree."""
    factors = {
        _read_lora_reference_downscale_factor(lo.path) for lo in job.loras if lo.kind is LoraKind.IC_LORA
    }
    factors.discard(1)
    if len(factors) > 1:
        raise FatalBackendError(f"IC-LoRAs disagree on reference_downscale_factor: {sorted(factors)}")
    return factors.pop() if factors else 1
