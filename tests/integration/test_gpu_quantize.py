"""fp8_scaled on real fp8 tensor cores and torch.compile on CUDA, tiny model in bf16 (skipped without a GPU
of compute capability >= 8.9). Run on a GPU machine with `pytest -m gpu`; the CPU suite covers the same code
with an emulated fp8 matmul (test_quantize_tiny.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltx2_batch.backends.base import RenderRequest, RenderResult
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.backends.quantize import FP8_MIN_CAPABILITY, fp8_layer_names, linear_layers
from ltx2_batch.config import CompileMode, ModelConfig, Quantization
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec, with_job_id

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.cuda.is_available() or torch.cuda.get_device_capability() < FP8_MIN_CAPABILITY,
        reason="needs CUDA with fp8 tensor cores (compute capability >= 8.9)",
    ),
]


def _render(root: Path, quantization: Quantization, compile_mode: CompileMode) -> tuple[RenderResult, object]:
    cfg = ModelConfig(root=str(root), dtype="bf16", quantization=quantization, compile=compile_mode)
    backend = create_backend(cfg, REPO_ROOT)
    job = RenderJob(
        name="gpu-q",
        prompt="A red ball rolls across a wooden table, soft knocking.",
        width=128,
        height=128,
        num_frames=17,
        frame_rate=24.0,
        seed=5,
        pipeline=PipelineKind.DISTILLED,
        mode=RenderMode.VIDEO,
        upscale=UpscaleSpec(spatial=False),
    )
    try:
        result = backend.render(RenderRequest(job=with_job_id(job, "gpu-q")))
        name = next(n for n in backend.cache.names() if n.startswith("transformer:"))
        transformer = backend.cache.get(name)
        return result, transformer
    finally:
        backend.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ltx2_batch.backends.tiny import ensure_tiny_models

    root = tmp_path_factory.mktemp("models") / "tiny"
    ensure_tiny_models(root)
    return root


def test_fp8_scaled_on_tensor_cores_keeps_the_frames(tiny: Path) -> None:
    pytest.importorskip("torchao")
    from torchao.quantization import Float8Tensor

    reference, _ = _render(tiny, Quantization.none, CompileMode.off)
    result, transformer = _render(tiny, Quantization.fp8_scaled, CompileMode.off)
    chosen = set(fp8_layer_names(linear_layers(transformer)))
    assert chosen
    assert all(isinstance(transformer.get_submodule(n).weight, Float8Tensor) for n in chosen)
    assert result.frames.shape == reference.frames.shape == (17, 128, 128, 3)
    diff = np.abs(result.frames.astype(np.float64) - reference.frames.astype(np.float64))
    assert diff.mean() < 3.0
    assert result.info["quantization"] == "fp8_scaled" and result.info["fp8_kernel"] == "scaled_mm"


def test_fp8_scaled_with_compiled_blocks(tiny: Path) -> None:
    pytest.importorskip("torchao")
    reference, _ = _render(tiny, Quantization.fp8_scaled, CompileMode.off)
    result, _ = _render(tiny, Quantization.fp8_scaled, CompileMode.blocks)
    assert result.frames.shape == reference.frames.shape
    diff = np.abs(result.frames.astype(np.float64) - reference.frames.astype(np.float64))
    assert diff.mean() < 3.0
    assert result.info["compile"] == "blocks"
