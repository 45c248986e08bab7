"""model=ltx2_random on a CPU: the full-size configs on the meta device (bench --meta), the header-only set,
the random loader inside the official builders (full-size small components built for real), the whole backend
on random weights (tiny configs in the same header-only form), and fp8 refused off CUDA."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from ltx2_batch.backends import random_weights as rw
from ltx2_batch.backends.base import RenderRequest
from ltx2_batch.backends.device import DevicePolicy
from ltx2_batch.backends.factory import adapter, create_backend
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.backends.tiny import FULL_CONFIG as TINY_CONFIG
from ltx2_batch.backends.tiny import GEMMA_ROOT, TINY_LAYOUT
from ltx2_batch.backends.weights import RandomWeights
from ltx2_batch.config import ModelConfig, ModelSource, Quantization
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec
from ltx2_batch.errors import ConfigError
from tests.conftest import REPO_ROOT, compose_app


@pytest.fixture(scope="module")
def random_root(tiny_root: Path) -> Path:
    return rw.ensure_random_set(tiny_root.parent / "random", tokenizer_source=tiny_root / GEMMA_ROOT)


def bench_meta(*args: str) -> dict:
    """`python bench/gpu_fullsize.py --meta ARGS`: the report it printed (it exited 0). A process of its own
    because the count needs one: a tiny build in this process overwrites ltx-core's Gemma constant, which
    the script detects and refuses to count with."""
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "gpu_fullsize.py"), "--meta", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_bench_meta_path_counts_the_official_parameters() -> None:
    """The CI guard for bench/gpu_fullsize.py: meta tensors only, seconds, exit 1 on any count mismatch."""
    report = bench_meta()
    assert report["ok"] is True and report["mismatched"] == {}
    assert report["params"]["transformer"] == 18_876_174_592  # the published "19B"
    assert report["transformer_b"] == 18.88
    assert 12.0e9 < report["params"]["text_encoder"] < 12.3e9  # Gemma-3-12B with its vision tower
    assert report["params"] == rw.PARAM_COUNTS


def test_header_only_set_is_small_and_carries_the_configs(random_root: Path) -> None:
    files = sorted(p for p in random_root.rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in files) < 3_000_000  # the tokenizer is the largest file: no weights
    checkpoint = random_root / rw.RANDOM_LAYOUT["checkpoint"]
    assert checkpoint.stat().st_size < 16_384 and rw.is_placeholder(checkpoint)
    with safe_open(str(checkpoint), framework="pt") as handle:
        assert list(handle.keys()) == []
        assert json.loads(handle.metadata()["config"]) == rw.FULL_CONFIG
    gemma = json.loads((random_root / rw.RANDOM_LAYOUT["gemma_root"] / "config.json").read_text())
    assert gemma["text_config"]["hidden_size"] == 3840 and gemma["text_config"]["num_hidden_layers"] == 48
    assert not rw.is_placeholder(random_root.parent / "tiny" / TINY_LAYOUT["checkpoint"])
    before = {p: p.stat().st_mtime_ns for p in files}
    rw.ensure_random_set(random_root, tokenizer_source=random_root.parent / "tiny" / GEMMA_ROOT)
    assert {p: p.stat().st_mtime_ns for p in files} == before  # idempotent: nothing rewritten


def test_random_model_files_resolve_under_the_model_root(tmp_path: Path, tiny_root: Path) -> None:
    shutil.copytree(tiny_root, tmp_path / "models" / "tiny")
    cfg = compose_app("model=ltx2_random", f"model.root={tmp_path / 'models'}").model
    assert cfg.source is ModelSource.random
    files = RandomWeights(cfg, tmp_path).resolve(allow_fp8=False)
    assert files.source == "random" and files.root == tmp_path / "models" / "random"
    assert files.checkpoint is not None and rw.is_placeholder(files.checkpoint)
    assert files.missing == ("distilled_lora",)  # random weights have no distilled LoRA (distilled only)


@pytest.mark.slow
def test_random_loader_builds_full_size_components_with_the_official_builders(random_root: Path) -> None:
    """Vocoder, audio decoder, spatial upsampler and video decoder at full size, through ModelLedger: every
    parameter materialised (no meta), finite, counted as on meta, seeded; the full-size VAE decodes."""
    from ltx_core.model.video_vae import decode_video
    from ltx_pipelines.utils import ModelLedger

    def ledger(seed: int) -> ModelLedger:
        built = ModelLedger(
            dtype=torch.float32,
            device=torch.device("cpu"),
            checkpoint_path=str(random_root / rw.RANDOM_LAYOUT["checkpoint"]),
            spatial_upsampler_path=str(random_root / rw.RANDOM_LAYOUT["spatial_upsampler"]),
        )
        return rw.install_random_loaders(built, seed, torch.float32)

    first, again, other = ledger(0), ledger(0), ledger(1)
    for name, method in (
        ("vocoder", "vocoder"),
        ("audio_decoder", "audio_decoder"),
        ("spatial_upsampler", "spatial_upsampler"),
    ):
        model = getattr(first, method)()
        params = list(model.parameters())
        assert sum(p.numel() for p in params) == rw.PARAM_COUNTS[name]
        assert not any(p.is_meta for p in params) and all(torch.isfinite(p).all() for p in params)
        same = getattr(again, method)()
        assert all(torch.equal(a, b) for a, b in zip(params, same.parameters(), strict=True))
        changed = getattr(other, method)()
        assert any(not torch.equal(a, b) for a, b in zip(params, changed.parameters(), strict=True))
    decoder = first.video_decoder()
    assert sum(p.numel() for p in decoder.parameters()) == rw.PARAM_COUNTS["video_decoder"]
    with torch.inference_mode():
        latent = torch.randn(1, 128, 2, 1, 1, generator=torch.Generator().manual_seed(0))
        video = torch.cat(list(decode_video(latent, decoder)))
    assert video.shape[0] == 9 and video.shape[1:3] == (32, 32)  # 8x temporal, 32x spatial: the published VAE
    assert torch.isfinite(video.float()).all()


def _tiny_shaped_random_files(tiny_root: Path, folder: Path) -> ModelFiles:
    """The random source's header-only form, with the tiny configs (a full-size set needs ~76 GB on a CPU)."""
    gemma = folder / GEMMA_ROOT
    shutil.copytree(tiny_root / GEMMA_ROOT, gemma, ignore=shutil.ignore_patterns("model*.safetensors"))
    rw.write_placeholder(gemma / "model-random.safetensors", {})
    rw.write_placeholder(folder / "ckpt.safetensors", {"config": json.dumps(TINY_CONFIG)})
    with safe_open(str(tiny_root / TINY_LAYOUT["spatial_upsampler"]), framework="pt") as handle:
        up_config = handle.metadata()["config"]
    rw.write_placeholder(folder / "up.safetensors", {"config": up_config})
    return ModelFiles(
        root=folder,
        source="random",
        checkpoint=folder / "ckpt.safetensors",
        is_fp8=False,
        gemma_root=gemma,
        distilled_lora=None,
        spatial_upsampler=folder / "up.safetensors",
        temporal_upsampler=None,
        ic_lora=None,
        expected=(),
        fetch_sources=(),
    )


@pytest.mark.slow
def test_backend_renders_on_random_weights(tiny_root: Path, tmp_path: Path) -> None:
    files = _tiny_shaped_random_files(tiny_root, tmp_path / "random")
    policy = DevicePolicy(device="cpu", dtype="float32", allow_fp8=False)

    def render(seed: int, job_seed: int, two_stage: bool) -> object:
        weights = RandomWeights(ModelConfig(source=ModelSource.random, seed=seed), tmp_path)
        backend = adapter()(files, policy, weights)
        try:
            job = RenderJob(
                name="r",
                prompt="A cat walks on a sunny street.",
                width=128 if two_stage else 64,
                height=128 if two_stage else 64,
                num_frames=9,
                frame_rate=24.0,
                seed=job_seed,
                pipeline=PipelineKind.DISTILLED,
                mode=RenderMode.VIDEO,
                upscale=UpscaleSpec(spatial=two_stage),
            )
            return backend.render(RenderRequest(job=job))
        finally:
            backend.close()

    first = render(0, 1, two_stage=False)
    assert first.frames.shape == (9, 64, 64, 3) and first.frames.std() > 0
    assert np.isfinite(first.audio).all() and first.info["weights"] == "random"
    assert first.info["memory_policy"] == "resident"
    assert np.array_equal(render(0, 1, two_stage=False).frames, first.frames)  # same weight seed: same bits
    assert not np.array_equal(render(1, 1, two_stage=False).frames, first.frames)  # other weights
    two = render(0, 1, two_stage=True)
    assert two.frames.shape == (9, 128, 128, 3) and two.info["two_stage"] is True


@pytest.mark.slow
def test_random_loader_keeps_ties_and_applies_the_fp8_downcast(tiny_root: Path, tmp_path: Path) -> None:
    """The official key ops still act: Gemma's lm_head shares the embedding tensor (no second 2 GB copy at
    full size), and the official fp8_cast policy stores the transformer's linear weights in float8."""
    from ltx_core.quantization import QuantizationPolicy
    from ltx_pipelines.utils import ModelLedger

    files = _tiny_shaped_random_files(tiny_root, tmp_path / "random")
    from ltx2_batch.backends import compat

    ledger = ModelLedger(
        dtype=torch.bfloat16,
        device=torch.device("cpu"),
        checkpoint_path=str(files.checkpoint),
        gemma_root_path=str(files.gemma_root),
        quantization=QuantizationPolicy.fp8_cast(),
    )
    ledger = rw.install_random_loaders(ledger, 0, torch.bfloat16)
    with compat.gemma_config(compat.read_gemma_config(files.gemma_root)):
        gemma = ledger.text_encoder().model
    embed = gemma.model.language_model.embed_tokens.weight
    assert gemma.lm_head.weight.data_ptr() == embed.data_ptr()  # one tensor, as the real checkpoint loads
    assert not any(p.is_meta for p in gemma.parameters())
    transformer = ledger.transformer()
    dtypes = {name: p.dtype for name, p in transformer.named_parameters()}
    to_q = [n for n in dtypes if n.endswith("attn1.to_q.weight")]
    assert to_q and all(dtypes[n] == torch.float8_e4m3fn for n in to_q)
    assert any(d == torch.bfloat16 for d in dtypes.values())  # everything else stays bf16
    assert not any(p.is_meta for p in transformer.parameters())


def test_fp8_is_refused_off_cuda_with_a_clear_message() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: fp8 is allowed")
    fp8_model = compose_app("model=ltx2_fp8").model
    with pytest.raises(
        ConfigError,
        match=r"model=ltx2_fp8 \(fp8 checkpoint files\) runs the fp8 transformer, which needs a CUDA GPU",
    ):
        create_backend(fp8_model, REPO_ROOT)
    forced = ModelConfig(name="ltx2_random", source=ModelSource.random, quantization=Quantization.fp8_cast)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        create_backend(forced, REPO_ROOT)


@pytest.mark.parametrize("family", ["ltx2", "ltx23"])
def test_fp8_scaled_selection_on_the_full_size_transformers(family: str) -> None:
    """On the real 48-block trees (meta device): blocks 1-42's attention and feed-forward linears go to fp8,
    86 % of the transformer's parameters; LTX-2.3's gate logits, the edge blocks and the rest stay bf16."""
    from ltx_core.model.transformer import LTXModelConfigurator

    from ltx2_batch.backends import random_weights23
    from ltx2_batch.backends.quantize import fp8_layer_names, linear_layers

    config = rw.FULL_CONFIG if family == "ltx2" else random_weights23.FULL_CONFIG
    with torch.device("meta"):
        model = LTXModelConfigurator.from_config(config)
    chosen = fp8_layer_names(linear_layers(model))
    blocks = {int(name.split(".")[1]) for name in chosen}
    assert blocks == set(range(1, 43))
    assert len(chosen) == 42 * 28  # per block: 6 attentions x (q, k, v, out) + video and audio feed-forward
    assert not [n for n in chosen if "to_gate_logits" in n]
    quantized = sum(model.get_submodule(n).weight.numel() for n in chosen)
    total = sum(p.numel() for p in model.parameters())
    assert 0.84 < quantized / total < 0.88
