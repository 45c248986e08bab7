"""What a recipe is: the `Recipe` protocol every recipe module implements, the per-job `RecipeRun` it works
in, the `Models` it reads, and the LoRA-per-stage plan a job's recipe resolves to.

Owns: the contract between the backend and the recipe modules (the backend loads models, checks what every
recipe shares, and decodes; a recipe composes the shared blocks into one official pipeline's denoising), and
the LoRA helpers every recipe's `stage_loras` uses (user LoRAs, refusing IC-LoRA files outside ic_lora, the
distilled LoRA at a strength).
Must not: name a pipeline kind (the table in recipes.py does), load models, or run a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_pipelines.utils.constants import PipelineParams
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_batch.backends.base import LatentHandoff
from ltx2_batch.backends.ltx2.clock import PhaseClock
from ltx2_batch.backends.ltx2.text import PromptEncoder
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import X2, LoraKind, LoraSpec, PipelineKind, RenderJob
from ltx2_batch.core.step_events import StageSteps
from ltx2_batch.errors import FatalBackendError

if TYPE_CHECKING:
    from ltx2_batch.backends.ltx2.decode import Denoised

Loras = tuple[LoraPathStrengthAndSDOps, ...]
# Job fields that only the recipes naming them in `Recipe.inputs` read; a job that sets one for another
# recipe is refused (the backend's check), as the manifest rules refuse it before a run.
EXCLUSIVE_INPUTS = ("retake", "audio_conditioning")


@dataclass(frozen=True)
class StageLoras:
    """The LoRAs each stage's transformer carries (the same tuple twice: one transformer for both)."""

    stage1: Loras
    stage2: Loras


def transformer_name(loras: Loras) -> str:
    """The model cache's name for the transformer with `loras` fused in."""
    return "transformer:" + "|".join(f"{lo.path}@{lo.strength}" for lo in loras)


class Models(Protocol):
    """The built models a recipe reads, held by the backend (built by `prepare`, or on first use)."""

    def transformer(self, loras: Loras) -> Any:
        """Implementers return the transformer with `loras` fused in."""
        ...

    def video_encoder(self) -> Any:
        """Implementers return the video VAE encoder."""
        ...

    def audio_encoder(self) -> Any:
        """Implementers return the audio VAE encoder (read by a2vid and retake only)."""
        ...

    def spatial_upsampler(self, scale: float) -> Any:
        """Implementers return the spatial upsampler of `scale` (x2 or x1.5)."""
        ...

    def temporal_upsampler(self) -> Any:
        """Implementers return the x2 temporal upsampler."""
        ...


@dataclass(frozen=True)
class RecipeRun:
    """One job's render in progress, as the recipe and the blocks see it: the job and its resolved LoRAs,
    where and in what dtype it computes, the models and text encoder it reads, its noise generator (which
    goes on into the decode), its phase clock and its step counter (None: nobody listens)."""

    job: RenderJob
    loras: StageLoras
    device: torch.device
    dtype: torch.dtype
    components: PipelineComponents
    params: PipelineParams  # the checkpoint family's official defaults (steps, guider params)
    models: Models
    text: PromptEncoder
    generator: torch.Generator
    noiser: GaussianNoiser
    clock: PhaseClock
    steps: StageSteps | None = None


class Recipe(Protocol):
    """One official pipeline, composed from the shared blocks. A new recipe is a module implementing this
    plus one row in recipes.RECIPES."""

    kind: PipelineKind
    inputs: frozenset[str]  # which of EXCLUSIVE_INPUTS it reads

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:
        """The transformer of each stage, from the job's LoRAs (raises FatalBackendError for LoRA kinds
        this recipe cannot take; MissingWeightsError for a file it needs)."""
        ...

    def check(self, job: RenderJob) -> None:
        """What this recipe refuses beyond the shared size and file rules (raises FatalBackendError)."""
        ...

    def stage_count(self, job: RenderJob) -> int:
        """How many denoising stages `job` runs (what the step counter announces)."""
        ...

    def denoise(self, run: RecipeRun, handoff: LatentHandoff | None) -> Denoised:
        """Everything up to the decode: text encoding, the stages, the upsampling."""
        ...


@dataclass(frozen=True)
class RecipePlan:
    """A job's recipe and its transformers, resolved once per job (recipes.resolve)."""

    recipe: Recipe
    loras: StageLoras


def official_loras(loras: tuple[LoraSpec, ...], kind: LoraKind) -> Loras:
    """The job's LoRAs of `kind`, as the official loader takes them."""
    return tuple(
        LoraPathStrengthAndSDOps(lo.path, lo.strength, LTXV_LORA_COMFY_RENAMING_MAP)
        for lo in loras
        if lo.kind is kind
    )


def user_loras(kind: PipelineKind, loras: tuple[LoraSpec, ...]) -> Loras:
    """The job's plain LoRAs; an IC-LoRA file is refused (only the ic_lora recipe conditions on one)."""
    if any(lo.kind is LoraKind.IC_LORA for lo in loras):
        raise FatalBackendError(f"IC-LoRA files need pipeline=ic_lora, not {kind.value}")
    return official_loras(loras, LoraKind.LORA)


def distilled_lora(files: ModelFiles, strength: float) -> LoraPathStrengthAndSDOps:
    """The model set's distilled LoRA at `strength` (MissingWeightsError, naming the file, when absent)."""
    if files.distilled_lora is None:
        files.require(("distilled_lora",))
    return LoraPathStrengthAndSDOps(str(files.distilled_lora), strength, LTXV_LORA_COMFY_RENAMING_MAP)


def two_stage_count(job: RenderJob) -> int:
    """Stages of a recipe that refines at full size when the job asks for spatial upscaling."""
    return 2 if job.upscale.spatial else 1


def require_x2_two_stage(job: RenderJob) -> None:
    """For the recipes whose official class is two-stage with the x2 upsampler by construction."""
    if not job.upscale.spatial or job.upscale.spatial_scale != X2:
        raise FatalBackendError(
            f"pipeline {job.pipeline.value} is two-stage with the x2 upsampler (upscale.spatial: true)"
        )


def refuse_handoff(kind: PipelineKind, handoff: LatentHandoff | None) -> None:
    """For the recipes that render one window with all their conditioning inside it (the manifest chains
    only distilled and ti2vid): a latent handoff would be ignored, so it is refused instead."""
    if handoff is not None:
        raise FatalBackendError(f"pipeline {kind.value} renders one window: it takes no latent handoff")
