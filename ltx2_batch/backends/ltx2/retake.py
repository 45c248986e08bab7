"""The retake recipe (ltx_pipelines/retake.py): regenerate a time window of an existing video. One stage at
the source's size, starting from the source's own video and audio latents, with TemporalRegionMask
conditionings that keep every token outside the window; guided (one guider pair with the family's guider
params, over the LTX2 schedule: a dev checkpoint) or the distilled sigmas, unguided.

Owns: reading and encoding the source (its audio cut or padded to the clip, as retake.py does) and the
window masks. Must not: re-implement a shared block (the stage is the shared runner's).
"""

from __future__ import annotations

from typing import Any

import torch
from ltx_core.model.audio_vae import encode_audio as vae_encode_audio
from ltx_core.types import Audio, AudioLatentShape, VideoPixelShape
from ltx_pipelines.retake import TemporalRegionMask
from ltx_pipelines.utils.media_io import load_video_conditioning

from ltx2_batch.backends.base import LatentHandoff
from ltx2_batch.backends.ltx2.audio_input import read_audio, stated_end_s
from ltx2_batch.backends.ltx2.decode import AudioOrigin, Denoised
from ltx2_batch.backends.ltx2.guidance import distilled_sigmas, guided_by_pair, scheduled_sigmas, unguided
from ltx2_batch.backends.ltx2.loops import Sampler
from ltx2_batch.backends.ltx2.recipe import RecipeRun, StageLoras, refuse_handoff, user_loras
from ltx2_batch.backends.ltx2.stage import DenoisedAudio, Stage, run_stage
from ltx2_batch.backends.ltx2.staged import sigma_trace
from ltx2_batch.backends.ltx2.upsample import full_shape
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob, RetakeSpec
from ltx2_batch.errors import FatalBackendError

_WAVEFORM_BATCHED_DIMS = 3  # [batch, channels, samples]
AUDIO_SLACK_S = 1.0  # audio that runs on past the clip by up to this much is read whole, as retake.py does


class Retake:
    """The retake `Recipe`: one stage over the source's latents, kept outside the window."""

    kind = PipelineKind.RETAKE
    inputs = frozenset({"retake"})

    def stage_loras(self, loras: tuple[LoraSpec, ...], files: ModelFiles) -> StageLoras:  # noqa: ARG002 - the Recipe signature; no file of the set is a LoRA here
        """One transformer with the user's LoRAs (a single stage)."""
        user = user_loras(self.kind, loras)
        return StageLoras(user, user)  # one transformer with the user's LoRAs

    def check(self, job: RenderJob) -> None:
        """Needs a retake spec, and refuses upscaling: the one stage runs at the source's size."""
        if job.retake is None:
            raise FatalBackendError("a retake spec is what pipeline retake needs")
        if job.upscale.spatial or job.upscale.temporal:
            raise FatalBackendError(
                "pipeline retake is one stage at the source's size: upscale {spatial: false, temporal: false}"
            )

    def stage_count(self, job: RenderJob) -> int:  # noqa: ARG002 - the Recipe signature; always one stage
        """Always one stage."""
        return 1

    def denoise(self, run: RecipeRun, handoff: LatentHandoff | None) -> Denoised:
        """Encode the source with its window masks, then one stage: guided over the LTX2 schedule, or the
        distilled sigmas unguided, as the retake spec says."""
        refuse_handoff(self.kind, handoff)
        job, spec = run.job, run.job.retake
        assert spec is not None  # check() refuses a retake without its spec
        shape = full_shape(run)
        with run.clock("stage1"):  # the source's encoding counts as the stage it starts
            video_latent, video_conds = _source_video(run, spec, shape)
            audio, origin = _source_audio(run, spec, shape)
        with run.clock("text_encode"):
            prompt, contexts = run.text.encode(job, None, negative=spec.guided)
        with run.clock("stage1"):
            transformer = run.models.transformer(run.loras.stage1)
            if spec.guided:
                steps = job.num_inference_steps or run.params.num_inference_steps
                sigmas = scheduled_sigmas(steps, run.device)
                denoise_fn = guided_by_pair(run.params, job, contexts, transformer)
            else:
                sigmas, denoise_fn = distilled_sigmas(run.device), unguided(contexts[0], transformer)
            stage = Stage(shape, video_conds, audio, sigmas, denoise_fn, initial_video=video_latent)
            video, audio_latent = run_stage(run, stage)
        return Denoised(
            job=job,
            prompt=prompt,
            sigmas=sigma_trace({"stage1": sigmas}),
            stage1_latent=video,
            final_latent=video,
            to_decode=video,
            audio_latent=audio_latent,
            frame_rate=job.frame_rate,
            generator=run.generator,
            timings=run.clock.timings,
            sampler=Sampler.euler,
            guided=spec.guided,
            audio_origin=origin,
        )


def _source_video(
    run: RecipeRun, spec: RetakeSpec, shape: VideoPixelShape
) -> tuple[torch.Tensor, tuple[Any, ...]]:
    """The source's video latents, and the mask that keeps them outside the window (everywhere when the
    video is not regenerated)."""
    video = load_video_conditioning(
        video_path=spec.path,
        height=shape.height,
        width=shape.width,
        frame_cap=shape.frames,
        dtype=run.dtype,
        device=run.device,
    )
    latent = run.models.video_encoder()(video)
    window = (spec.start_s, spec.end_s) if spec.regenerate_video else (0.0, 0.0)
    return latent, (TemporalRegionMask(*window, fps=shape.fps),)


def audio_window_s(path: str, clip_s: float) -> float | None:
    """How much of the source's audio to read: all of it, as retake.py does (None), when its header says it
    ends within AUDIO_SLACK_S of the clip's end; else only the clip's duration (the latent keeps only that):
    a source whose sound runs on for minutes past its picture is not decoded whole. The encoder gives the
    same latents, but for the last bits, however much audio follows the clip (test_retake.py)."""
    stated = stated_end_s(path)
    if stated is not None and stated <= clip_s + AUDIO_SLACK_S:
        return None
    return clip_s


def _source_audio(
    run: RecipeRun, spec: RetakeSpec, shape: VideoPixelShape
) -> tuple[DenoisedAudio, AudioOrigin]:
    """The source's audio latents, cut or zero-padded to the clip, kept outside the window (everywhere when
    the audio is not regenerated), and where the clip's sound comes from. A source without audio has nothing
    to keep: the soundtrack is generated from noise over the whole clip, as retake.py does, and recorded as
    generated, not as the source's (validation refuses `regenerate_audio: false` there)."""
    encoder = run.models.audio_encoder()
    window_s = audio_window_s(spec.path, shape.frames / shape.fps)
    source = read_audio(spec.path, run.device, 0.0, window_s, encoder)
    if source is None:
        return DenoisedAudio(), AudioOrigin.generated
    waveform = source.waveform.squeeze(0)
    if waveform.dim() == _WAVEFORM_BATCHED_DIMS - 1:  # [channels, samples]: add the batch
        waveform = waveform.unsqueeze(0)
    latent = vae_encode_audio(
        Audio(waveform=waveform.to(run.dtype), sampling_rate=source.sampling_rate), encoder, None
    )
    latent = _fit_frames(latent, AudioLatentShape.from_video_pixel_shape(shape).frames)
    window = (spec.start_s, spec.end_s) if spec.regenerate_audio else (0.0, 0.0)
    origin = AudioOrigin.source_outside_window if spec.regenerate_audio else AudioOrigin.source
    return DenoisedAudio(conditionings=(TemporalRegionMask(*window, fps=shape.fps),), initial=latent), origin


def _fit_frames(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """An audio latent cut or zero-padded to `frames` latent frames (as retake.py does)."""
    if latent.shape[2] >= frames:
        return latent[:, :, :frames]
    pad = torch.zeros(
        (*latent.shape[:2], frames - latent.shape[2], latent.shape[3]),
        device=latent.device,
        dtype=latent.dtype,
    )
    return torch.cat([latent, pad], dim=2)
