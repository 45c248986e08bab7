"""The official denoising loops by sampler, and the step counter that reads them.

Owns: which official loop and diffusion step a `Sampler` means (Euler: every recipe but hq; res_2s: the hq
recipe, ti2vid_two_stages_hq.py), and wrapping a loop so that each call of its denoising function reports
the loop's own step index to the render's StageSteps (step_progress), without touching its arguments, so
the latents are bit-identical with and without a listener.
Must not: change what the official loops compute, or know which recipe runs them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_pipelines.utils import euler_denoising_loop, res2s_audio_video_denoising_loop

from ltx2_batch.core.step_events import StageSteps

DenoisingLoop = Callable[[torch.Tensor, Any, Any, Any], tuple[Any, Any]]


class Sampler(str, enum.Enum):
    """Which official diffusion step and loop a stage runs."""

    euler = "euler"  # EulerDiffusionStep + euler_denoising_loop
    res2s = "res2s"  # Res2sDiffusionStep + res2s_audio_video_denoising_loop


def stepper(sampler: Sampler) -> Any:
    """The official diffusion step of `sampler`."""
    return Res2sDiffusionStep() if sampler is Sampler.res2s else EulerDiffusionStep()


def denoising_loop(denoise_fn: Any, sampler: Sampler, steps: StageSteps | None) -> DenoisingLoop:
    """The official loop of `sampler` over `denoise_fn`, in the `denoising_loop_fn` form the official stage
    helpers take; with `steps`, it is one stage of the render's step count."""

    def official(
        sigmas: torch.Tensor, video_state: Any, audio_state: Any, step: Any, fn: Any
    ) -> tuple[Any, Any]:
        """The sampler's official loop over `fn`, unchanged; res_2s is told the latent's dtype."""
        common = {"sigmas": sigmas, "video_state": video_state, "audio_state": audio_state, "stepper": step}
        if sampler is Sampler.res2s:
            # res_2s casts its substep latents to the model's dtype: bf16 (its default) is the official
            # pipeline's only dtype, float32 the CPU default here
            dtype = video_state.latent.dtype
            states: tuple[Any, Any] = res2s_audio_video_denoising_loop(
                **common, denoise_fn=fn, model_dtype=dtype
            )
            return states
        states = euler_denoising_loop(**common, denoise_fn=fn)
        return states

    def loop(sigmas: torch.Tensor, video_state: Any, audio_state: Any, step: Any) -> tuple[Any, Any]:
        """The loop the stage helpers call; with `steps`, the stage is announced and each call reported."""
        if steps is None:
            return official(sigmas, video_state, audio_state, step, denoise_fn)
        steps.begin(len(sigmas) - 1)  # both loops take len(sigmas) - 1 steps
        result = official(sigmas, video_state, audio_state, step, _counted(denoise_fn, steps))
        steps.end()
        return result

    return loop


def _counted(denoise_fn: Any, steps: StageSteps) -> Any:
    """`denoise_fn`, telling `steps` the step index of each call first: the same call with the same
    arguments, so the latents are bit-identical with and without counting."""

    def counted(video_state: Any, audio_state: Any, sigmas: torch.Tensor, step_index: int) -> Any:
        """Report `step_index`, then call `denoise_fn` with the same arguments."""
        steps.at(step_index)
        return denoise_fn(video_state, audio_state, sigmas, step_index)

    return counted
