"""The one stage runner: a denoising stage of any recipe, from its start latents to its denoised latents.

Owns: `Stage` (what a stage is: its size, video conditionings, audio track, sigmas, denoising function,
sampler, start latent and noise scale) and `run_stage`, which composes the official steps exactly as
`denoise_audio_video` / `denoise_video_only` / retake.py do (noise_video_state, noise_audio_state, the
loop, clear_conditioning, unpatchify), in their order, so the noise generator is drawn from identically.
The audio track decides what happens to the audio: `DenoisedAudio` denoises it beside the video (from noise,
or from given latents, kept clean where its conditionings say: the chaining handoff, retake's time mask);
`FrozenAudio` carries given latents through the loop untouched (a2vid), as `denoise_video_only` does.
Must not: know which recipe runs it, or build the denoising function (guidance.py and the recipes do).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.helpers import noise_audio_state, noise_video_state

from ltx2_batch.backends.ltx2.loops import Sampler, denoising_loop, stepper
from ltx2_batch.backends.ltx2.recipe import RecipeRun


class AudioTrack(Protocol):
    """What a stage does with the audio: its start state (`common` are noise_audio_state's shared
    arguments) and the latent it hands on once the loop has run."""

    def start(self, common: dict[str, Any], noise_scale: Any) -> tuple[Any, Any]:
        """Implementers return the audio's start state and tools for the loop."""
        ...

    def finish(self, state: Any, tools: Any) -> torch.Tensor:
        """Implementers return the audio latent the stage hands on, from its state after the loop."""
        ...


@dataclass(frozen=True)
class DenoisedAudio:
    """Audio denoised with the video: from noise (`initial` None) or from `initial` (noised by the stage's
    noise scale), tokens kept clean where `conditionings` say so."""

    conditionings: tuple[Any, ...] = ()
    initial: torch.Tensor | None = None

    def start(self, common: dict[str, Any], noise_scale: Any) -> tuple[Any, Any]:
        """The official noised audio state, from noise or from `initial` at the stage's noise scale."""
        state_and_tools: tuple[Any, Any] = noise_audio_state(
            conditionings=list(self.conditionings),
            noise_scale=noise_scale,
            initial_latent=self.initial,
            **common,
        )
        return state_and_tools

    def finish(self, state: Any, tools: Any) -> torch.Tensor:
        """The denoised audio latent, conditioning tokens cleared and unpatchified."""
        return tools.unpatchify(tools.clear_conditioning(state)).latent


@dataclass(frozen=True)
class FrozenAudio:
    """Audio that does not denoise: `latent` rides through the loop fully masked (noise scale 0, denoise mask
    0, as denoise_video_only sets it) and comes back as given."""

    latent: torch.Tensor

    def start(self, common: dict[str, Any], noise_scale: Any) -> tuple[Any, Any]:  # noqa: ARG002 - AudioTrack's signature; frozen audio is never noised
        """`latent` as the state, never noised and masked out of denoising."""
        state, tools = noise_audio_state(
            conditionings=[], noise_scale=0.0, initial_latent=self.latent, **common
        )
        return replace(state, denoise_mask=torch.zeros_like(state.denoise_mask)), tools

    def finish(self, state: Any, tools: Any) -> torch.Tensor:  # noqa: ARG002 - AudioTrack's signature
        """`latent` as given: the loop did not change it."""
        return self.latent


@dataclass(frozen=True)
class Stage:
    """One denoising stage. `noise_scale` noises the start latents (1.0: pure noise; a refinement stage
    passes its first sigma); `initial_video` is the start latent (None: from noise)."""

    shape: VideoPixelShape
    conditionings: tuple[Any, ...]
    audio: AudioTrack
    sigmas: torch.Tensor
    denoise_fn: Any
    sampler: Sampler = Sampler.euler
    noise_scale: Any = 1.0
    initial_video: torch.Tensor | None = None


def run_stage(run: RecipeRun, stage: Stage) -> tuple[torch.Tensor, torch.Tensor]:
    """The stage's denoised (video, audio) latents, each unpatchified to [B, C, T, ...]."""
    common = {
        "output_shape": stage.shape,
        "noiser": run.noiser,
        "components": run.components,
        "dtype": run.dtype,
        "device": run.device,
    }
    video_state, video_tools = noise_video_state(
        conditionings=list(stage.conditionings),
        noise_scale=stage.noise_scale,
        initial_latent=stage.initial_video,
        **common,
    )
    audio_state, audio_tools = stage.audio.start(common, stage.noise_scale)
    loop = denoising_loop(stage.denoise_fn, stage.sampler, run.steps)
    video_state, audio_state = loop(stage.sigmas, video_state, audio_state, stepper(stage.sampler))
    video = video_tools.unpatchify(video_tools.clear_conditioning(video_state)).latent
    return video, stage.audio.finish(audio_state, audio_tools)
