"""The staged flow that five official recipes share, and the refinement stage that a2vid shares too.

Owns: `StagedRecipe`, the flow of distilled.py, ti2vid_one_stage.py / ti2vid_two_stages.py,
keyframe_interpolation.py, ic_lora.py and ti2vid_two_stages_hq.py: text encoding, stage 1 (at the job's
size divided by the spatial scale when a refinement follows) conditioned on the images, on what the recipe
adds and on the chaining handoff, then (upscale.spatial) the spatial upsampling and the full-size stage,
then AdaIN and the temporal upsampling. A recipe module subclasses it and says how stage 1 is guided, which
LoRAs each stage carries, how images condition and what else conditions stage 1. `refine` is the full-size
stage (the stage-2 sigmas, unguided) every two-stage recipe runs, a2vid's with its audio frozen.
Must not: branch on a pipeline kind (a recipe's differences are its overrides), or load models.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.args import ImageConditioningInput

from ltx2_batch.backends.base import LatentHandoff
from ltx2_batch.backends.ltx2.conditioning import first_image, image_inputs, replacing_images
from ltx2_batch.backends.ltx2.decode import Denoised
from ltx2_batch.backends.ltx2.guidance import refinement_sigmas, unguided
from ltx2_batch.backends.ltx2.handoff import adain, handoff_audio, handoff_video
from ltx2_batch.backends.ltx2.loops import Sampler
from ltx2_batch.backends.ltx2.recipe import RecipeRun, StageLoras, two_stage_count
from ltx2_batch.backends.ltx2.stage import AudioTrack, Stage, run_stage
from ltx2_batch.backends.ltx2.upsample import full_shape, spatial_upsample, stage1_shape, temporal_upsample
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob

Guidance = tuple[torch.Tensor, Any]  # a stage's sigmas and its denoising function


class StagedRecipe(abc.ABC):
    """text -> stage 1 -> (spatial upsample -> stage 2) -> AdaIN -> (temporal upsample). Subclasses set
    `kind`, `guided` (stage 1 encodes and uses the negative prompt) and `sampler`, and implement
    `stage_loras` and `first_stage`."""

    kind: PipelineKind
    inputs: frozenset[str] = frozenset()
    guided: bool = False
    sampler: Sampler = Sampler.euler

    @abc.abstractmethod
    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:
        """The LoRAs each stage's transformer carries (see `Recipe.stage_loras`)."""
        ...

    @abc.abstractmethod
    def first_stage(self, run: RecipeRun, contexts: list[Any], transformer: Any) -> Guidance:
        """Stage 1's sigmas and denoising function (`contexts`: [prompt] or, guided, [prompt, negative]; stage
        1's size is upsample.stage1_shape(run))."""

    def image_conditionings(
        self, run: RecipeRun, images: list[ImageConditioningInput], shape: VideoPixelShape, video_encoder: Any
    ) -> list[Any]:
        """How the job's images condition each stage (the official default: replacing the latent)."""
        return replacing_images(run, images, shape, video_encoder)

    def extra_conditionings(self, run: RecipeRun, shape: VideoPixelShape, video_encoder: Any) -> list[Any]:  # noqa: ARG002 - the hook's signature; most recipes add nothing
        """What else conditions stage 1 (ic_lora: the reference videos)."""
        return []

    def check(self, job: RenderJob) -> None:  # noqa: B027 - a hook with a default: most recipes add no rule
        """Nothing beyond the shared rules, unless a recipe says otherwise."""

    def stage_count(self, job: RenderJob) -> int:
        """Two stages when the job upscales spatially, else one."""
        return two_stage_count(job)

    def denoise(self, run: RecipeRun, handoff: LatentHandoff | None) -> Denoised:
        """The staged flow (class docstring), conditioned on the images, the recipe's extras, the handoff."""
        job = run.job
        images = image_inputs(run)
        with run.clock("text_encode"):
            prompt, contexts = run.text.encode(job, first_image(images), negative=self.guided)
        shape = stage1_shape(run)
        encoder = run.models.video_encoder()
        with run.clock("stage1"):
            conds = [
                *self.image_conditionings(run, images, shape, encoder),
                *self.extra_conditionings(run, shape, encoder),
                *handoff_video(run, handoff.stage1 if handoff else None, handoff),
            ]
            audio = handoff_audio(run, shape, handoff)
            transformer = run.models.transformer(run.loras.stage1)
            sigmas, denoise_fn = self.first_stage(run, contexts, transformer)
            stage1, audio_latent = run_stage(
                run, Stage(shape, tuple(conds), audio, sigmas, denoise_fn, self.sampler)
            )
        trace = {"stage1": sigmas}
        video = stage1
        if job.upscale.spatial:

            def stage2_conditionings(full: VideoPixelShape) -> list[Any]:
                """Stage 2's conditionings at full size: the images again, and the handoff's final latents."""
                final = handoff.final if handoff else None
                return [
                    *self.image_conditionings(run, images, full, encoder),
                    *handoff_video(run, final, handoff),
                ]

            audio = handoff_audio(run, full_shape(run), handoff, start=audio_latent)
            video, audio_latent, trace["stage2"] = refine(
                run, stage1, contexts[0], encoder, stage2_conditionings, audio, self.sampler
            )
        final = adain(video, handoff)
        to_decode, frame_rate = temporal_upsample(run, final, encoder)
        return Denoised(
            job=job,
            prompt=prompt,
            sigmas=sigma_trace(trace),
            stage1_latent=stage1,
            final_latent=final,
            to_decode=to_decode,
            audio_latent=audio_latent,
            frame_rate=frame_rate,
            generator=run.generator,
            timings=run.clock.timings,
            sampler=self.sampler,
            guided=self.guided,
        )


def refine(
    run: RecipeRun,
    stage1: torch.Tensor,
    context: Any,
    video_encoder: Any,
    conditionings: Callable[[VideoPixelShape], list[Any]],
    audio: AudioTrack,
    sampler: Sampler,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The full-size stage of a two-stage recipe: stage 1's video latent spatially upsampled, then refined
    over the stage-2 sigmas by stage 2's transformer, unguided, from the upsampled latent noised to the first
    sigma. `conditionings` are the video's at the full size; `audio` what happens to the audio. Returns the
    (video, audio) latents and the sigmas."""
    upscaled = spatial_upsample(run, stage1, video_encoder)
    with run.clock("stage2"):
        shape = full_shape(run)
        conds = conditionings(shape)
        transformer = run.models.transformer(run.loras.stage2)
        sigmas = refinement_sigmas(run.device)
        stage = Stage(
            shape,
            tuple(conds),
            audio,
            sigmas,
            unguided(context, transformer),
            sampler,
            noise_scale=sigmas[0],
            initial_video=upscaled,
        )
        video, audio_latent = run_stage(run, stage)
    return video, audio_latent, sigmas


def sigma_trace(sigmas: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """The sigmas each stage ran, as the sidecar records them."""
    return {stage: [float(s) for s in values] for stage, values in sigmas.items()}
