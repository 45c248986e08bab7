"""The recipe table: which module renders each pipeline kind on which kind of checkpoint, and resolving a
job's recipe.

Owns: `RECIPES` ((PipelineKind, CheckpointKind or ANY) -> recipe; a new recipe is one module plus one row
here) and `resolve`, which turns a job's kind and LoRAs into its `RecipePlan` once (the backend keeps the last
one, so check, prepare and render of the same job resolve it once between them). A row keyed by a checkpoint
kind wins over the kind's ANY row; a checkpoint whose kind is not known (a file name that says neither, no
`model.checkpoint_kind`) counts as dev, as the driver counts it (run/planning.py `weights_offer`).
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
from ltx2_batch.backends.ltx2.keyframe_distilled import DistilledKeyframe
from ltx2_batch.backends.ltx2.recipe import Recipe, RecipePlan
from ltx2_batch.backends.ltx2.retake import Retake
from ltx2_batch.backends.ltx2.ti2vid import Ti2vid
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import LoraSpec, PipelineKind
from ltx2_batch.errors import FatalBackendError

ANY = None  # a row for every checkpoint kind that has no row of its own
RecipeKey = tuple[PipelineKind, CheckpointKind | None]

RECIPES: Mapping[RecipeKey, Recipe] = MappingProxyType(
    {
        (PipelineKind.DISTILLED, ANY): Distilled(),  # distilled.py
        (PipelineKind.TI2VID, ANY): Ti2vid(),  # ti2vid_two_stages.py, ti2vid_one_stage.py (spatial: false)
        (PipelineKind.KEYFRAME, ANY): Keyframe(),  # keyframe_interpolation.py (the dev checkpoint's recipe)
        (PipelineKind.KEYFRAME, CheckpointKind.distilled): DistilledKeyframe(),  # no official class
        (PipelineKind.IC_LORA, ANY): IcLora(),  # ic_lora.py
        (PipelineKind.HQ, ANY): Hq(),  # ti2vid_two_stages_hq.py
        (PipelineKind.A2VID, ANY): A2vid(),  # a2vid_two_stage.py
        (PipelineKind.RETAKE, ANY): Retake(),  # retake.py (its spec says guided or distilled sigmas)
    }
)


def recipe_for(pipeline: PipelineKind, checkpoint: CheckpointKind | None) -> Recipe | None:
    """The recipe of `pipeline` on a checkpoint of kind `checkpoint` (None: not known, counted as dev);
    None for a kind no recipe renders (auto)."""
    kind = checkpoint or CheckpointKind.dev
    return RECIPES.get((pipeline, kind)) or RECIPES.get((pipeline, ANY))


def readers(field: str) -> list[str]:
    """The pipeline kinds whose recipes read the job field `field` (recipe.EXCLUSIVE_INPUTS)."""
    return sorted({kind.value for (kind, _), recipe in RECIPES.items() if field in recipe.inputs})


def resolve(pipeline: PipelineKind, loras: tuple[LoraSpec, ...], files: ModelFiles) -> RecipePlan:
    """`pipeline`'s recipe on `files`' checkpoint and the LoRAs of each of its stages (FatalBackendError for a
    kind no recipe renders, e.g. auto, or LoRAs the recipe cannot take; MissingWeightsError for a file it
    needs)."""
    recipe = recipe_for(pipeline, files.checkpoint_kind)
    if recipe is None:
        raise FatalBackendError(f"pipeline {pipeline.value!r} is not a concrete pipeline kind")
    return RecipePlan(recipe, recipe.stage_loras(loras, files))
