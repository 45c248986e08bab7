"""fp8_scaled and torch.compile through the adapter on the tiny model, on the CPU.

fp8_scaled's matmuls need fp8 tensor cores, so on a CPU it is refused before any model work; the same
torchao tensors with an emulating matmul (Fp8Kernel.emulated, which only code can ask for) run the quantized
model code here: the right layers hold fp8 weights, and a render keeps its frame count with pixels close to
the unquantized ones. torch.compile on the blocks runs on the CPU too (a minute of compiling on two cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltx2_batch.backends.base import RenderBackend, RenderRequest, RenderResult
from ltx2_batch.backends.device import choose_device_policy
from ltx2_batch.backends.factory import adapter, create_backend
from ltx2_batch.backends.quantize import (
    Fp8Kernel,
    TransformerPrep,
    fp8_layer_names,
    linear_layers,
    prepare_transformer,
)
from ltx2_batch.backends.weights import weights_source
from ltx2_batch.config import CompileMode, ModelConfig, Quantization
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec, with_job_id
from ltx2_batch.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _job(frames: int = 9) -> RenderJob:
    job = RenderJob(
        name="q",
        prompt="A red ball rolls across a wooden table, soft knocking.",
        width=64,
        height=64,
        num_frames=frames,
        frame_rate=24.0,
        seed=3,
        pipeline=PipelineKind.DISTILLED,
        mode=RenderMode.VIDEO,
        upscale=UpscaleSpec(spatial=False),
    )
    return with_job_id(job, f"q-{frames}")


def _render(root: Path, prep: TransformerPrep) -> tuple[RenderResult, object]:
    cfg = ModelConfig(root=str(root))
    source = weights_source(cfg, REPO_ROOT)
    backend = adapter()(
        files=source.resolve(allow_fp8=False),
        weights=source,
        policy=choose_device_policy(cfg),
        transformer_prep=prep,
    )
    try:
        result = backend.render(RenderRequest(job=_job()))
        name = next(n for n in backend.cache.names() if n.startswith("transformer:"))
        transformer = backend.cache.get(name)
        return result, transformer
    finally:
        backend.close()


@pytest.fixture(scope="module")
def reference(tiny_fp32: RenderBackend) -> RenderResult:
    """The job on the session's float32 tiny backend (no transformer preparation)."""
    return tiny_fp32.render(RenderRequest(job=_job()))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: fp8_scaled may run")
def test_fp8_scaled_is_refused_off_cuda_before_any_model_work(tmp_path: Path) -> None:
    cfg = ModelConfig(root=str(tmp_path / "models"), quantization=Quantization.fp8_scaled)
    with pytest.raises(ConfigError) as err:
        create_backend(cfg, REPO_ROOT)
    message = str(err.value)
    assert "model.quantization=fp8_scaled needs a CUDA GPU with fp8 tensor cores" in message
    assert (
        "use model.quantization=none (fp8 of either kind needs CUDA)" in message
    )  # no fix that fails here too
    assert not (tmp_path / "models").exists()  # the tiny set was not even built


def test_compile_without_a_compiler_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    cfg = ModelConfig(root=str(tmp_path / "models"), device="cpu", compile=CompileMode.blocks)
    with pytest.raises(ConfigError, match=r"model.compile=blocks on the CPU needs a C\+\+ compiler"):
        create_backend(cfg, REPO_ROOT)
    assert not (tmp_path / "models").exists()


def test_layer_listing_reads_a_module_tree() -> None:
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.to_q = torch.nn.Linear(32, 32)
            self.to_gate_logits = torch.nn.Linear(32, 2)
            self.norm = torch.nn.LayerNorm(32)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patchify_proj = torch.nn.Linear(16, 32)
            self.transformer_blocks = torch.nn.ModuleList([Block(), Block()])

    layers = linear_layers(Model())
    assert [(layer.name, layer.in_features, layer.out_features) for layer in layers] == [
        ("patchify_proj", 16, 32),
        ("transformer_blocks.0.to_q", 32, 32),
        ("transformer_blocks.0.to_gate_logits", 32, 2),
        ("transformer_blocks.1.to_q", 32, 32),
        ("transformer_blocks.1.to_gate_logits", 32, 2),
    ]
    assert fp8_layer_names(layers) == ("transformer_blocks.0.to_q", "transformer_blocks.1.to_q")


@pytest.mark.slow
def test_fp8_scaled_emulated_runs_the_tiny_model(tiny_root: Path, reference: RenderResult) -> None:
    pytest.importorskip("torchao", reason="the fp8 extra (torchao) is not installed")
    from torchao.quantization import Float8Tensor

    result, transformer = _render(
        tiny_root, TransformerPrep(Quantization.fp8_scaled, kernel=Fp8Kernel.emulated)
    )
    chosen = set(fp8_layer_names(linear_layers(transformer)))
    assert len(chosen) > 20
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert isinstance(module.weight, Float8Tensor) == (name in chosen), name
    assert result.frames.shape == reference.frames.shape == (9, 64, 64, 3)
    diff = np.abs(result.frames.astype(np.float64) - reference.frames.astype(np.float64))
    assert 0 < diff.mean() < 2.0  # quantized, so not the same bytes; close (8-bit pixel levels)
    assert result.info["quantization"] == "fp8_scaled" and result.info["fp8"] is True
    assert result.info["fp8_kernel"] == "emulated"


@pytest.mark.slow
def test_compile_blocks_keeps_the_frames(tiny_root: Path, reference: RenderResult) -> None:
    result, transformer = _render(tiny_root, TransformerPrep(compile=CompileMode.blocks))
    blocks = transformer.velocity_model.transformer_blocks
    assert all(type(b).__name__ == type(blocks[0]).__name__ for b in blocks)
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in blocks)  # nn.Module.compile
    assert result.frames.shape == reference.frames.shape
    diff = np.abs(result.frames.astype(np.float64) - reference.frames.astype(np.float64))
    assert diff.mean() < 1.0  # inductor's fused float32 kernels round differently, by a level at most
    assert result.info["compile"] == "blocks"


def test_full_compile_wraps_the_module_in_place() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    assert prepare_transformer(model, TransformerPrep(compile=CompileMode.full)) is model
    assert model._compiled_call_impl is not None
    with pytest.raises(ConfigError, match="has no transformer_blocks"):
        prepare_transformer(model, TransformerPrep(compile=CompileMode.blocks))
