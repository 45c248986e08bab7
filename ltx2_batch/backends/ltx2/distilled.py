"""The distilled recipe (ltx_pipelines/distilled.py): the distilled checkpoint's fixed 8 sigmas, unguided,
the user's LoRAs in both stages; two-stage at the spatial upsampler's scale, or one stage at the job's size
(upscale.spatial: false, which the official class does not offer).

Owns: the distilled recipe's choices over the staged flow (staged.py).
Must not: re-implement a block (stage, guidance, conditioning, upsampling are shared).
"""

from __future__ import annotations

from typing import Any

from ltx2_batch.backends.ltx2.guidance import distilled_sigmas, unguided
from ltx2_batch.backends.ltx2.recipe import RecipeRun, StageLoras, user_loras
from ltx2_batch.backends.ltx2.staged import Guidance, StagedRecipe
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind


class Distilled(StagedRecipe):
    """The distilled `Recipe`: fixed sigmas, unguided, the user's LoRAs in both stages."""

    kind: PipelineKind = PipelineKind.DISTILLED

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:  # noqa: ARG002 - the Recipe signature; no file of the set is a LoRA here
        """One transformer for both stages, with the user's LoRAs only: the checkpoint is distilled."""
        user = user_loras(self.kind, loras)
        return StageLoras(user, user)

    def first_stage(self, run: RecipeRun, contexts: list[Any], transformer: Any) -> Guidance:
        """The distilled checkpoint's fixed sigmas, unguided (no negative prompt)."""
        return distilled_sigmas(run.device), unguided(contexts[0], transformer)
