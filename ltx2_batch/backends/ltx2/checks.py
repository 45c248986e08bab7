"""The checks every recipe shares, run before anything is loaded: what a job may not ask of this model set.

Owns: refusing a LoRA file that would not change the transformer (lora_check.py), a job input its recipe
does not read (recipe.EXCLUSIVE_INPUTS), then the recipe's own check,
the spatial upsampler file of the job's scale, the sizes the official pipelines accept (one-stage multiples
of 32, two-stage of 64, x1.5 two-stage of 96), and one window's frame count (8k+1, within the model
family's window: 121 frames on LTX-2, 481 on LTX-2.3).
Must not: load anything, or know a recipe by its kind (a recipe's own rules are its `check`).
"""

from __future__ import annotations

from collections.abc import Callable

from ltx_pipelines.utils.helpers import assert_resolution

from ltx2_batch.backends.ltx2.recipe import EXCLUSIVE_INPUTS, RecipePlan
from ltx2_batch.backends.ltx2.recipes import readers
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.families import spec as family_spec
from ltx2_batch.core.jobs import X1_5, RenderJob
from ltx2_batch.errors import FatalBackendError, MissingWeightsError


def check_job(
    job: RenderJob,
    plan: RecipePlan,
    files: ModelFiles,
    temporal_scale: int,
    one_window: bool,
    lora_check: Callable[[str], str | None],
) -> None:
    """Raise FatalBackendError (or MissingWeightsError, naming the file) for what `files` cannot render of
    `job` under its resolved recipe; `one_window`: the job is one window (a chained job's windows are
    checked per chunk); `lora_check`: why a LoRA file would not change this model's transformer (the
    driver's check, backends/lora_check.py, again: a set the driver could not read is checked here)."""
    for i, lora in enumerate(job.loras):
        problem = lora_check(lora.path)
        if problem:
            raise FatalBackendError(f"loras[{i}] {lora.path} {problem}")
    for name in EXCLUSIVE_INPUTS:
        if getattr(job, name) is not None and name not in plan.recipe.inputs:
            kinds = ", ".join(readers(name))
            raise FatalBackendError(f"{name} is only used by pipeline {kinds}, not {job.pipeline.value}")
    plan.recipe.check(job)
    _check_upsampler(job, files)
    two_stage, scale = job.upscale.spatial, job.upscale.spatial_scale
    try:
        if two_stage and scale == X1_5:  # stage 1 at 2/3 size on the two-stage (64-pixel) grid
            if job.width % 96 or job.height % 96:
                raise ValueError(
                    f"x1.5 two-stage sizes must be multiples of 96, got {job.width}x{job.height}"
                )
        else:
            assert_resolution(height=job.height, width=job.width, is_two_stage=two_stage)
    except ValueError as exc:
        raise FatalBackendError(str(exc)) from exc
    if not one_window:
        return
    window = family_spec(files.family).window_frames
    if (job.num_frames - 1) % temporal_scale or not 1 <= job.num_frames <= window:
        raise FatalBackendError(
            f"num_frames={job.num_frames}: one window takes 8k+1 frames, at most {window}"
        )


def _check_upsampler(job: RenderJob, files: ModelFiles) -> None:
    """The spatial upsampler file of the job's scale is there when the job refines at full size."""
    scale = job.upscale.spatial_scale
    if not job.upscale.spatial or files.spatial_upsampler_for(scale) is not None:
        return
    if scale == X1_5:
        raise MissingWeightsError(
            f"upscale.spatial: 1.5 needs the x1.5 spatial upsampler, absent under {files.root}; "
            "set model.spatial_upsampler_x1_5"
        )
    files.require(("spatial_upsampler",))
