"""`pipeline: hq` against the official TI2VidTwoStagesHQPipeline (res_2s sampler, the distilled LoRA in both
stages at 0.25 / 0.5), bit for bit in bf16 on the CPU at 64x64 x 9 frames, on both embedded sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.families import ModelFamily
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode

pytestmark = pytest.mark.slow
PROMPT = "A cat walks on a sunny street, camera pans left, soft piano music."


@pytest.fixture(scope="module", params=[ModelFamily.ltx2, ModelFamily.ltx23], ids=["tiny", "tiny23"])
def bf16(request: pytest.FixtureRequest, tiny_root: Path) -> Iterator[tuple[RenderBackend, Path, str]]:
    cfg = ModelConfig(root=str(tiny_root.parent), family=request.param, dtype="bf16")
    be = create_backend(cfg, Path("/"))
    if request.param is ModelFamily.ltx23:
        from ltx2_batch.backends import tiny23 as builder
    else:
        from ltx2_batch.backends import tiny as builder
    yield be, tiny_root.parent / builder.TINY_DIR_NAME, request.param.value
    be.close()


def test_parity_with_official_hq_pipeline(bf16: tuple[RenderBackend, Path, str]) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.ti2vid_two_stages_hq import TI2VidTwoStagesHQPipeline
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_3_HQ_PARAMS

    backend, root, family = bf16
    if family == "ltx23":
        from ltx2_batch.backends.tiny23 import TINY_LAYOUT
    else:
        from ltx2_batch.backends.tiny import TINY_LAYOUT
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
    lora = [
        LoraPathStrengthAndSDOps(str(root / TINY_LAYOUT["distilled_lora"]), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)
    ]
    official = TI2VidTwoStagesHQPipeline(
        checkpoint_path=str(root / TINY_LAYOUT["checkpoint"]),
        distilled_lora=lora,
        distilled_lora_strength_stage_1=0.25,
        distilled_lora_strength_stage_2=0.5,
        spatial_upsampler_path=str(root / TINY_LAYOUT["spatial_upsampler"]),
        gemma_root=str(root / TINY_LAYOUT["gemma_root"]),
        loras=(),
        device=torch.device("cpu"),
    )
    with torch.inference_mode():
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
