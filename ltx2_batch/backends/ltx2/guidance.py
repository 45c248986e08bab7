"""Sigma schedules and denoising functions: how a stage is guided, as the official recipes build it.

Owns: the three schedules (the distilled sigmas, the stage-2 refinement sigmas, the LTX2 scheduler over a
step count, optionally shaped by the latent's token count as the hq recipe does), the unguided denoising
function (one model call per step), the two guided forms the official recipes use (per-step guider
factories: ti2vid_two_stages.py, keyframe_interpolation.py; one guider pair: ti2vid_two_stages_hq.py,
retake.py) and the job's guider overrides over the official defaults.
Must not: know which recipe uses which form (the recipes choose), or run a stage.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from ltx_core.components.guiders import (
    MultiModalGuider,
    MultiModalGuiderParams,
    create_multimodal_guider_factory,
)
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES
from ltx_pipelines.utils.helpers import (
    multi_modal_guider_denoising_func,
    multi_modal_guider_factory_denoising_func,
    simple_denoising_func,
)

from ltx2_batch.core.jobs import GuiderSpec, RenderJob


def distilled_sigmas(device: torch.device) -> torch.Tensor:
    """The distilled checkpoint's fixed 8-step schedule (distilled.py, ic_lora.py, retake.py distilled)."""
    return torch.Tensor(DISTILLED_SIGMA_VALUES).to(device)


def refinement_sigmas(device: torch.device) -> torch.Tensor:
    """The 3-step schedule of every two-stage recipe's full-size stage."""
    return torch.Tensor(STAGE_2_DISTILLED_SIGMA_VALUES).to(device)


def scheduled_sigmas(steps: int, device: torch.device, latent: torch.Tensor | None = None) -> torch.Tensor:
    """The LTX2 scheduler over `steps`; given `latent` (the hq recipe), shaped by its token count."""
    schedule = (
        LTX2Scheduler().execute(steps=steps)
        if latent is None
        else LTX2Scheduler().execute(latent=latent, steps=steps)
    )
    return schedule.to(dtype=torch.float32, device=device)


def unguided(context: Any, transformer: Any) -> Any:
    """One model call per step on the prompt's encodings (no negative prompt)."""
    return simple_denoising_func(
        video_context=context.video_encoding, audio_context=context.audio_encoding, transformer=transformer
    )


def guided_by_factories(defaults: Any, job: RenderJob, contexts: list[Any], transformer: Any) -> Any:
    """CFG/STG through per-step guider factories (ti2vid_two_stages.py): `defaults`' guider params
    (PipelineParams) with the job's overrides, against the negative prompt's encodings (`contexts[1]`)."""
    positive, negative = contexts
    return multi_modal_guider_factory_denoising_func(
        video_guider_factory=create_multimodal_guider_factory(
            params=guider_params(defaults.video_guider_params, job.video_guider_params),
            negative_context=negative.video_encoding,
        ),
        audio_guider_factory=create_multimodal_guider_factory(
            params=guider_params(defaults.audio_guider_params, job.audio_guider_params),
            negative_context=negative.audio_encoding,
        ),
        v_context=positive.video_encoding,
        a_context=positive.audio_encoding,
        transformer=transformer,
    )


def guided_by_pair(defaults: Any, job: RenderJob, contexts: list[Any], transformer: Any) -> Any:
    """CFG/STG through one (video, audio) guider pair (ti2vid_two_stages_hq.py, retake.py): `defaults`'
    guider params (PipelineParams or the HQ ones) with the job's overrides."""
    positive, negative = contexts
    return multi_modal_guider_denoising_func(
        MultiModalGuider(
            params=guider_params(defaults.video_guider_params, job.video_guider_params),
            negative_context=negative.video_encoding,
        ),
        MultiModalGuider(
            params=guider_params(defaults.audio_guider_params, job.audio_guider_params),
            negative_context=negative.audio_encoding,
        ),
        v_context=positive.video_encoding,
        a_context=positive.audio_encoding,
        transformer=transformer,
    )


def guider_params(defaults: MultiModalGuiderParams, spec: GuiderSpec) -> MultiModalGuiderParams:
    """Official defaults (PipelineParams for this checkpoint) with the job's non-None fields on top."""
    overrides = {
        k: getattr(spec, k)
        for k in ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale", "skip_step")
        if getattr(spec, k) is not None
    }
    if spec.stg_blocks is not None:
        overrides["stg_blocks"] = list(spec.stg_blocks)
    return replace(defaults, **overrides)
