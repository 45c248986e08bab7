"""Bit-for-bit parity with ltx_pipelines on the embedded LTX-2.3 tiny set (`model=tiny23`) for the kinds whose
parity was so far checked only on the LTX-2 tiny set: distilled, ti2vid two-stage, ti2vid one-stage, keyframe
and ic_lora. bf16 on the CPU at 64x64 x 9 frames, seed 42; guided kinds get the 2.3 guider params."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ltx2_batch.backends import tiny23
from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.core.jobs import (
    ImageCondition,
    LoraKind,
    LoraSpec,
    PipelineKind,
    RenderJob,
    RenderMode,
    UpscaleSpec,
    VideoCondition,
)
from tests.fixtures.backends import TinySet

pytestmark = pytest.mark.slow
PROMPT = "A cat walks on a sunny street, soft piano music."


@pytest.fixture
def root(tiny23_set: TinySet) -> Path:
    """The session's embedded tiny23 set (tests/fixtures/backends.py)."""
    return tiny23_set.root


@pytest.fixture
def backend(tiny23_bf16: RenderBackend) -> RenderBackend:
    """The session's bf16 tiny23 backend: the official pipelines' only dtype."""
    return tiny23_bf16


@pytest.fixture(autouse=True)
def _official_gemma(tiny23_set: TinySet) -> Iterator[None]:
    """Every official pipeline here is the tiny23 set's, and builds its Gemma from ltx-core's constant: each
    test runs inside that set's Gemma scope (our backend's own scope nests inside it)."""
    with tiny23_set.gemma_scope():
        yield


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("assets23")
    yy, xx = np.mgrid[0:64, 0:64]
    first = np.stack([xx * 4, yy * 4, np.full_like(xx, 128)], -1).astype(np.uint8)
    Image.fromarray(first).save(folder / "first.png")
    Image.fromarray(255 - first).save(folder / "last.png")
    video = folder / "reference.mp4"
    _write_video(video, [np.roll(first, 4 * i, axis=1) for i in range(9)])
    return {"first": str(folder / "first.png"), "last": str(folder / "last.png"), "video": str(video)}


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _job(**kw: object) -> RenderJob:
    base: dict[str, object] = {
        "name": "t",
        "prompt": PROMPT,
        "width": 64,
        "height": 64,
        "num_frames": 9,
        "frame_rate": 24.0,
        "seed": 42,
        "pipeline": PipelineKind.DISTILLED,
        "mode": RenderMode.VIDEO,
        "num_inference_steps": 2,
    }
    return RenderJob(**{**base, **kw})  # type: ignore[arg-type]


def _path(root: Path, role: str) -> str:
    return str(root / tiny23.TINY_LAYOUT[role])


def _official_frames(video_iter: object) -> np.ndarray:
    return torch.cat([c.cpu() for c in video_iter], dim=0).numpy()  # type: ignore[attr-defined]


def _guided_kwargs() -> dict[str, object]:
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_3_PARAMS

    return {
        "negative_prompt": DEFAULT_NEGATIVE_PROMPT,
        "num_inference_steps": 2,
        "video_guider_params": LTX_2_3_PARAMS.video_guider_params,
        "audio_guider_params": LTX_2_3_PARAMS.audio_guider_params,
    }


def _distilled_lora(root: Path) -> list[object]:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

    return [LoraPathStrengthAndSDOps(_path(root, "distilled_lora"), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)]


def _assert_matches_official(ours: object, official: Any, **inputs: object) -> None:
    """The official pipeline's output for the same prompt, seed and shape as `_job` (plus `inputs`) is
    `ours`, bit for bit."""
    with torch.inference_mode():
        video, audio = official(
            prompt=PROMPT, seed=42, height=64, width=64, num_frames=9, frame_rate=24.0, **inputs
        )
        frames = _official_frames(video)
    _assert_same(ours, frames, audio)


def _assert_same(ours: object, frames: np.ndarray, audio: object) -> None:
    assert ours.sample_rate == tiny23.AUDIO_SAMPLE_RATE  # type: ignore[attr-defined]  # rendered on the 2.3 set
    assert frames.shape == (9, 64, 64, 3)
    assert np.array_equal(ours.frames, frames)  # type: ignore[attr-defined]
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())  # type: ignore[attr-defined]


def test_parity_with_official_distilled_pipeline(backend: RenderBackend, root: Path) -> None:
    from ltx_pipelines.distilled import DistilledPipeline

    ours = backend.render(RenderRequest(job=_job()))
    official = DistilledPipeline(
        distilled_checkpoint_path=_path(root, "checkpoint"),
        gemma_root=_path(root, "gemma_root"),
        spatial_upsampler_path=_path(root, "spatial_upsampler"),
        loras=[],
        device=torch.device("cpu"),
    )
    _assert_matches_official(ours, official, images=[])


def test_parity_with_official_two_stage_pipeline(backend: RenderBackend, root: Path) -> None:
    from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline

    ours = backend.render(RenderRequest(job=_job(pipeline=PipelineKind.TI2VID)))
    official = TI2VidTwoStagesPipeline(
        checkpoint_path=_path(root, "checkpoint"),
        distilled_lora=_distilled_lora(root),
        spatial_upsampler_path=_path(root, "spatial_upsampler"),
        gemma_root=_path(root, "gemma_root"),
        loras=[],
        device=torch.device("cpu"),
    )
    _assert_matches_official(ours, official, images=[], **_guided_kwargs())


def test_parity_with_official_one_stage_pipeline(
    backend: RenderBackend, root: Path, assets: dict[str, str]
) -> None:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline
    from ltx_pipelines.utils.args import ImageConditioningInput

    job = _job(
        pipeline=PipelineKind.TI2VID,
        upscale=UpscaleSpec(spatial=False),
        images=(ImageCondition(assets["first"], 0, 1.0),),
    )
    ours = backend.render(RenderRequest(job=job))
    official = TI2VidOneStagePipeline(
        checkpoint_path=_path(root, "checkpoint"),
        gemma_root=_path(root, "gemma_root"),
        loras=[],
        device=torch.device("cpu"),
    )
    _assert_matches_official(
        ours, official, images=[ImageConditioningInput(assets["first"], 0, 1.0)], **_guided_kwargs()
    )


def test_parity_with_official_keyframe_pipeline(
    tiny23_dev_bf16: RenderBackend, root: Path, assets: dict[str, str]
) -> None:
    """The official keyframe class is the dev checkpoint's recipe: the tiny23 files play one here."""
    from ltx_pipelines.keyframe_interpolation import KeyframeInterpolationPipeline
    from ltx_pipelines.utils.args import ImageConditioningInput

    images = (ImageCondition(assets["first"], 0, 1.0), ImageCondition(assets["last"], 8, 0.9))
    ours = tiny23_dev_bf16.render(RenderRequest(job=_job(pipeline=PipelineKind.KEYFRAME, images=images)))
    official = KeyframeInterpolationPipeline(
        checkpoint_path=_path(root, "checkpoint"),
        distilled_lora=_distilled_lora(root),
        spatial_upsampler_path=_path(root, "spatial_upsampler"),
        gemma_root=_path(root, "gemma_root"),
        loras=[],
        device=torch.device("cpu"),
    )
    _assert_matches_official(
        ours,
        official,
        images=[ImageConditioningInput(i.path, i.frame_idx, i.strength) for i in images],
        **_guided_kwargs(),
    )


def test_parity_with_official_ic_lora_pipeline(
    backend: RenderBackend, root: Path, assets: dict[str, str]
) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.ic_lora import ICLoraPipeline

    ic_lora = _path(root, "ic_lora")
    job = _job(
        pipeline=PipelineKind.IC_LORA,
        loras=(LoraSpec(ic_lora, 1.0, LoraKind.IC_LORA),),
        video_conditioning=(VideoCondition(assets["video"], 1.0),),
    )
    ours = backend.render(RenderRequest(job=job))
    official = ICLoraPipeline(
        distilled_checkpoint_path=_path(root, "checkpoint"),
        spatial_upsampler_path=_path(root, "spatial_upsampler"),
        gemma_root=_path(root, "gemma_root"),
        loras=[LoraPathStrengthAndSDOps(ic_lora, 1.0, LTXV_LORA_COMFY_RENAMING_MAP)],
        device=torch.device("cpu"),
    )
    _assert_matches_official(ours, official, images=[], video_conditioning=[(assets["video"], 1.0)])
