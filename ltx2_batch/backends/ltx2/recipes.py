"""The recipe table: which module renders each pipeline kind, and resolving a job's recipe.

Owns: `RECIPES` (PipelineKind -> recipe; a new recipe is one module plus one row here) and `resolve`, which
turns a job's kind and LoRAs into its `RecipePlan` once (the backend keeps the last one, so check, prepare
and render of the same job resolve it once between them).
Must not: hold per-job state, or load anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ltx2_batch.backends.ltx2.a2vid import A2vid
from ltx2_batch.backends.ltx2.distilled import Distilled
from ltx2_batch.backends.ltx2.hq import Hq
from ltx2_batch.backends.ltx2.ic_lora import IcLora
from ltx2_batch.backends.ltx2.keyframe import Keyframe
from ltx2_batch.backends.ltx2.recipe import Recipe, RecipePlan
from ltx2_batch.backends.ltx2.retake import Retake
from ltx2_batch.backends.ltx2.ti2vid import Ti2vid
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind
from ltx2_batch.errors import FatalBackendError

RECIPES: Mapping[PipelineKind, Recipe] = MappingProxyType(
    {
        PipelineKind.DISTILLED: Distilled(),  # distilled.py
        PipelineKind.TI2VID: Ti2vid(),  # ti2vid_two_stages.py, ti2vid_one_stage.py (upscale.spatial: false)
        PipelineKind.KEYFRAME: Keyframe(),  # keyframe_interpolation.py
        PipelineKind.IC_LORA: IcLora(),  # ic_lora.py
        PipelineKind.HQ: Hq(),  # ti2vid_two_stages_hq.py
        PipelineKind.A2VID: A2vid(),  # a2vid_two_stage.py
        PipelineKind.RETAKE: Retake(),  # retake.py
    }
)


def resolve(pipeline: PipelineKind, loras: tuple[LoraSpec, ...], files: ModelFiles) -> RecipePlan:
    """`pipeline`'s recipe and the LoRAs of each of its stages (FatalBackendError for a kind no recipe
    renders, e.g. auto, or LoRAs the recipe cannot take; MissingWeightsError for a file it needs)."""
    recipe = RECIPES.get(pipeline)
    if recipe is None:
        raise FatalBackendError(f"pipeline {pipeline.value!r} is not a concrete pipeline kind")
    return RecipePlan(recipe, recipe.stage_loras(loras, files))
