"""The ti2vid recipe: ti2vid_two_stages.py, and ti2vid_one_stage.py when the job does not upscale.

One module for the two official classes because they are one recipe with a parameter: the one-stage class
is the two-stage class's stage 1 run at the job's size, with the same guidance, LoRAs and images, and the
job's `upscale.spatial` is exactly that parameter. Stage 1 is guided (CFG/STG through per-step guider
factories, the family's guider params with the job's overrides, over the LTX2 schedule of the job's steps);
stage 2 carries the distilled LoRA beside the user's.
Owns: the ti2vid recipe's choices over the staged flow (staged.py); keyframe.py reuses them.
Must not: re-implement a block.
"""

from __future__ import annotations

from typing import Any

from ltx_pipelines.utils.constants import DEFAULT_LORA_STRENGTH

from ltx2_batch.backends.ltx2.guidance import guided_by_factories, scheduled_sigmas
from ltx2_batch.backends.ltx2.recipe import RecipeRun, StageLoras, distilled_lora, user_loras
from ltx2_batch.backends.ltx2.staged import Guidance, StagedRecipe
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind


class Ti2vid(StagedRecipe):
    """The ti2vid `Recipe`: guided stage 1, then (upscale.spatial) the refinement with the distilled LoRA."""

    kind: PipelineKind = PipelineKind.TI2VID
    guided: bool = True

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:
        """The user's LoRAs in stage 1; stage 2 adds the distilled LoRA at the official default strength."""
        user = user_loras(self.kind, loras)
        return StageLoras(user, (*user, distilled_lora(files, DEFAULT_LORA_STRENGTH)))

    def first_stage(self, run: RecipeRun, contexts: list[Any], transformer: Any) -> Guidance:
        """Per-step CFG/STG guider factories over the LTX2 schedule, of the job's steps or the family's."""
        steps = run.job.num_inference_steps or run.params.num_inference_steps
        return scheduled_sigmas(steps, run.device), guided_by_factories(
            run.params, run.job, contexts, transformer
        )
