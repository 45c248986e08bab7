"""`pipeline: hq` against the official TI2VidTwoStagesHQPipeline (res_2s sampler, the distilled LoRA in both
stages at 0.25 / 0.5), bit for bit in bf16 on the CPU at 64x64 x 9 frames, on both embedded sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode
from tests.fixtures.backends import TinySet

pytestmark = pytest.mark.slow
PROMPT = "A cat walks on a sunny street, camera pans left, soft piano music."


def test_parity_with_official_hq_pipeline(family_bf16: tuple[RenderBackend, TinySet]) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.ti2vid_two_stages_hq import TI2VidTwoStagesHQPipeline
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_3_HQ_PARAMS

    backend, tiny_set = family_bf16  # the session's bf16 backend of each embedded set (tests/fixtures)
    job = RenderJob(
        name="hq",
        prompt=PROMPT,
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=42,
        pipeline=PipelineKind.HQ,
        mode=RenderMode.VIDEO,
        num_inference_steps=2,
    )
    ours = backend.render(RenderRequest(job=job))
    assert ours.info["recipe"]["sampler"] == "res2s" and ours.info["recipe"]["guidance"] is True
    lora = [LoraPathStrengthAndSDOps(tiny_set.path("distilled_lora"), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)]
    official = TI2VidTwoStagesHQPipeline(
        checkpoint_path=tiny_set.path("checkpoint"),
        distilled_lora=lora,
        distilled_lora_strength_stage_1=0.25,
        distilled_lora_strength_stage_2=0.5,
        spatial_upsampler_path=tiny_set.path("spatial_upsampler"),
        gemma_root=tiny_set.path("gemma_root"),
        loras=(),
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT,
            seed=42,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=24.0,
            num_inference_steps=2,
            video_guider_params=LTX_2_3_HQ_PARAMS.video_guider_params,
            audio_guider_params=LTX_2_3_HQ_PARAMS.audio_guider_params,
            images=[],
        )
        frames = torch.cat([c.cpu() for c in video], dim=0).numpy()
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())
