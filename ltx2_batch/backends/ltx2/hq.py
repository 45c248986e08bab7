"""The hq recipe (ltx_pipelines/ti2vid_two_stages_hq.py): the res_2s sampler in both stages; stage 1 guided by
one guider pair with the HQ guider params, over the LTX2 schedule shaped by stage 1's token count; the
distilled LoRA in both stages at the official strengths (hq_2_stage_arg_parser's defaults). Always two-stage
with the x2 upsampler.

Owns: the hq recipe's choices over the staged flow. Must not: re-implement a block.
"""

from __future__ import annotations

from typing import Any

import torch
from ltx_core.tools import VideoLatentShape
from ltx_pipelines.utils.constants import LTX_2_3_HQ_PARAMS

from ltx2_batch.backends.ltx2.guidance import guided_by_pair, scheduled_sigmas
from ltx2_batch.backends.ltx2.loops import Sampler
from ltx2_batch.backends.ltx2.recipe import (
    RecipeRun,
    StageLoras,
    distilled_lora,
    require_x2_two_stage,
    user_loras,
)
from ltx2_batch.backends.ltx2.staged import Guidance, StagedRecipe
from ltx2_batch.backends.ltx2.upsample import stage1_shape
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob

# ltx_pipelines' hq_2_stage_arg_parser defaults: the distilled LoRA's strength in each stage of hq
HQ_LORA_STRENGTH_STAGE_1 = 0.25
HQ_LORA_STRENGTH_STAGE_2 = 0.5


class Hq(StagedRecipe):
    """The hq `Recipe`: res_2s in both stages, the distilled LoRA at hq's strengths."""

    kind: PipelineKind = PipelineKind.HQ
    guided: bool = True
    sampler: Sampler = Sampler.res2s

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:
        """The user's LoRAs plus the distilled LoRA: 0.25 in stage 1, 0.5 in stage 2 (official defaults)."""
        user = user_loras(self.kind, loras)
        return StageLoras(
            (*user, distilled_lora(files, HQ_LORA_STRENGTH_STAGE_1)),
            (*user, distilled_lora(files, HQ_LORA_STRENGTH_STAGE_2)),
        )

    def check(self, job: RenderJob) -> None:
        """Two-stage x2 only, as the official class is."""
        require_x2_two_stage(job)

    def first_stage(self, run: RecipeRun, contexts: list[Any], transformer: Any) -> Guidance:
        """One guider pair with the HQ params, over the LTX2 schedule shaped by stage 1's token count."""
        hq = LTX_2_3_HQ_PARAMS
        steps = run.job.num_inference_steps or hq.num_inference_steps
        empty = torch.empty(VideoLatentShape.from_pixel_shape(stage1_shape(run)).to_torch_shape())
        return scheduled_sigmas(steps, run.device, latent=empty), guided_by_pair(
            hq, run.job, contexts, transformer
        )
