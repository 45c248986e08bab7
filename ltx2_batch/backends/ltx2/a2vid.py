"""The a2vid recipe (ltx_pipelines/a2vid_two_stage.py): an audio file drives the video. The file's audio from
`start_s` is encoded once and frozen: both stages denoise the video only (denoise_video_only's steps), stage 1
guided on the video (the family's video guider params with the job's overrides; the audio guider at neutral
defaults) over the LTX2 schedule, stage 2 the shared refinement with the distilled LoRA beside the user's.
The clip's audio is the input audio as read (over the window the clip uses, mixed to the encoder's
channels: audio_input.py), not a VAE round trip. Always two-stage with the x2 upsampler.

Owns: the driving audio's window and encoding, and a2vid's stage 1. Must not: re-implement a shared block.
"""

from __future__ import annotations

from typing import Any

import torch
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.model.audio_vae import encode_audio as vae_encode_audio
from ltx_core.types import AudioLatentShape
from ltx_pipelines.utils.constants import DEFAULT_LORA_STRENGTH
from ltx_pipelines.utils.helpers import multi_modal_guider_denoising_func

from ltx2_batch.backends.base import LatentHandoff
from ltx2_batch.backends.ltx2.audio_input import read_audio
from ltx2_batch.backends.ltx2.conditioning import first_image, image_inputs, replacing_images
from ltx2_batch.backends.ltx2.decode import AudioOrigin, Denoised
from ltx2_batch.backends.ltx2.guidance import guider_params, scheduled_sigmas
from ltx2_batch.backends.ltx2.loops import Sampler
from ltx2_batch.backends.ltx2.recipe import (
    RecipeRun,
    StageLoras,
    distilled_lora,
    refuse_handoff,
    require_x2_two_stage,
    two_stage_count,
    user_loras,
)
from ltx2_batch.backends.ltx2.stage import FrozenAudio, Stage, run_stage
from ltx2_batch.backends.ltx2.staged import refine, sigma_trace
from ltx2_batch.backends.ltx2.upsample import stage1_shape, temporal_upsample
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob
from ltx2_batch.errors import FatalBackendError


class A2vid:
    """The a2vid `Recipe`: the driving audio encoded once and frozen, the video denoised in two stages."""

    kind = PipelineKind.A2VID
    inputs = frozenset({"audio_conditioning"})

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:
        """The user's LoRAs in stage 1; stage 2 adds the distilled LoRA at the official default strength."""
        user = user_loras(self.kind, loras)
        return StageLoras(user, (*user, distilled_lora(files, DEFAULT_LORA_STRENGTH)))

    def check(self, job: RenderJob) -> None:
        """Two-stage x2 only, and the driving audio file must be given."""
        require_x2_two_stage(job)
        if job.audio_conditioning is None:
            raise FatalBackendError("audio_conditioning is what pipeline a2vid needs")

    def stage_count(self, job: RenderJob) -> int:
        """Two stages whenever the job upscales spatially (which `check` requires)."""
        return two_stage_count(job)

    def denoise(self, run: RecipeRun, handoff: LatentHandoff | None) -> Denoised:
        """Stage 1 guided on the video with the audio frozen, then the shared refinement (audio still frozen)
        and the temporal upsampling; the clip's sound is the input audio as read."""
        refuse_handoff(self.kind, handoff)
        job = run.job
        images = image_inputs(run)
        with run.clock("text_encode"):
            prompt, contexts = run.text.encode(job, first_image(images), negative=True)
        shape = stage1_shape(run)
        with run.clock("stage1"):  # the driving audio's encoding counts as stage 1
            source_audio, audio_latent = _driving_audio(run)
        encoder = run.models.video_encoder()
        with run.clock("stage1"):
            conds = replacing_images(run, images, shape, encoder)
            transformer = run.models.transformer(run.loras.stage1)
            sigmas = scheduled_sigmas(job.num_inference_steps or run.params.num_inference_steps, run.device)
            denoise_fn = multi_modal_guider_denoising_func(
                video_guider=MultiModalGuider(
                    params=guider_params(run.params.video_guider_params, job.video_guider_params),
                    negative_context=contexts[1].video_encoding,
                ),
                audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
                v_context=contexts[0].video_encoding,
                a_context=contexts[0].audio_encoding,
                transformer=transformer,
            )
            frozen = FrozenAudio(audio_latent)
            stage1, _ = run_stage(run, Stage(shape, tuple(conds), frozen, sigmas, denoise_fn))
        trace = {"stage1": sigmas}
        video, _, trace["stage2"] = refine(
            run,
            stage1,
            contexts[0],
            encoder,
            lambda full: replacing_images(run, images, full, encoder),
            frozen,
            Sampler.euler,
        )
        to_decode, frame_rate = temporal_upsample(run, video, encoder)
        return Denoised(
            job=job,
            prompt=prompt,
            sigmas=sigma_trace(trace),
            stage1_latent=stage1,
            final_latent=video,
            to_decode=to_decode,
            audio_latent=audio_latent,
            frame_rate=frame_rate,
            generator=run.generator,
            timings=run.clock.timings,
            sampler=Sampler.euler,
            guided=True,
            source_audio=source_audio,
            audio_origin=AudioOrigin.input,
        )


def _driving_audio(run: RecipeRun) -> tuple[Any, torch.Tensor]:
    """The file's audio over the window the clip uses, mixed to the encoder's channels (audio_input.py),
    and its latent cut to the clip's duration (a2vid_two_stage.py). The window is `start_s` ..
    `start_s + max_duration_s`, as the official class reads it, or, without `max_duration_s`, the clip's
    duration from `start_s`, as its command line defaults it (the class itself would decode to the end of the
    file: 141 s and 7.3 GB for a 10-minute file driving 9 frames). Validation refuses a `max_duration_s`
    shorter than the clip, so the window always covers it."""
    job = run.job
    cond = job.audio_conditioning
    assert cond is not None  # check() refuses a2vid without it
    clip_s = job.num_frames / job.frame_rate
    window_s = clip_s if cond.max_duration_s is None else max(clip_s, cond.max_duration_s)
    encoder = run.models.audio_encoder()
    decoded = read_audio(cond.path, run.device, cond.start_s, window_s, encoder)
    if decoded is None:
        raise FatalBackendError(f"audio_conditioning.path {cond.path}: no audio stream")
    latent = vae_encode_audio(decoded, encoder)
    frames = AudioLatentShape.from_duration(batch=1, duration=clip_s, channels=8, mel_bins=16).frames
    return decoded, latent[:, :, :frames]
