"""model=ltx23_random on a CPU: the 22B configs on the meta device (bench --meta --family ltx23), the
header-only set reading as a published LTX-2.3 file (to us and to the official `detect_params`), and the
random loader building the 22B vocoder with bandwidth extension through the official builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ltx2_batch.backends import compat
from ltx2_batch.backends import random_weights as rw
from ltx2_batch.backends import random_weights23 as rw23
from ltx2_batch.backends.checkpoint_info import checkpoint_info
from ltx2_batch.backends.tiny import GEMMA_ROOT
from ltx2_batch.backends.weights import RandomWeights
from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.families import CheckpointKind, ModelFamily
from tests.conftest import compose_app
from tests.integration.test_fullsize_meta import bench_meta


@pytest.fixture(scope="module")
def random23_root(tiny_root: Path) -> Path:
    return rw23.ensure_random_set(tiny_root.parent / "random23", tokenizer_source=tiny_root / GEMMA_ROOT)


def test_bench_meta_path_counts_the_22b_parameters() -> None:
    report = bench_meta("--family", "ltx23")
    assert report["ok"] is True and report["mismatched"] == {}
    assert report["family"] == "ltx23"
    assert report["params"] == rw23.PARAM_COUNTS
    assert report["diffusion_model_b"] == 22.16  # the published "22B"
    assert report["params"]["transformer"] > rw.PARAM_COUNTS["transformer"]  # gates and prompt AdaLN
    # the 2.3 text path: 8 connector layers at 4096 wide and the V2 aggregate embeddings
    assert report["params"]["embeddings_processor"] > 2 * rw.PARAM_COUNTS["embeddings_processor"]
    assert report["params"]["text_encoder"] == rw.PARAM_COUNTS["text_encoder"]  # the same Gemma-3-12B


def test_header_only_set_reads_as_ltx23(random23_root: Path) -> None:
    checkpoint = random23_root / rw23.RANDOM_LAYOUT["checkpoint"]
    assert checkpoint.stat().st_size < 16_384 and rw.is_placeholder(checkpoint)
    info = checkpoint_info(checkpoint)
    assert (info.family, info.model_version) == (ModelFamily.ltx23, "2.3.0")
    assert info.has_2_3_format and info.vocoder_bwe
    compat.prepare()
    from ltx_pipelines.utils.constants import LTX_2_3_PARAMS, detect_params

    assert detect_params(str(checkpoint)) is LTX_2_3_PARAMS
    gemma = json.loads((random23_root / rw23.RANDOM_LAYOUT["gemma_root"] / "config.json").read_text())
    assert gemma["text_config"]["hidden_size"] == 3840
    files = sorted(p for p in random23_root.rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in files) < 3_000_000  # no weights anywhere
    before = {p: p.stat().st_mtime_ns for p in files}
    rw23.ensure_random_set(random23_root, tokenizer_source=random23_root.parent / "tiny" / GEMMA_ROOT)
    assert {p: p.stat().st_mtime_ns for p in files} == before  # idempotent


def test_preset_resolves_under_random23(tmp_path: Path, random23_root: Path) -> None:
    cfg = compose_app("model=ltx23_random", f"model.root={random23_root.parent}").model
    assert cfg.source is ModelSource.random and cfg.family is ModelFamily.ltx23
    files = RandomWeights(cfg, tmp_path).resolve(
        allow_fp8=False
    )  # the random source dispatches on the family
    assert files.root == random23_root
    assert files.family is ModelFamily.ltx23 and files.model_version == "2.3.0"
    assert files.checkpoint_kind is CheckpointKind.distilled
    assert files.missing == ("distilled_lora",)
    ltx2 = compose_app("model=ltx2_random", f"model.root={random23_root.parent}").model
    ltx2_files = RandomWeights(ltx2, tmp_path).resolve(allow_fp8=False)
    assert ltx2_files.root == random23_root.parent / "random"
    assert (ltx2_files.family, ltx2_files.checkpoint_kind) == (ModelFamily.ltx2, CheckpointKind.distilled)


@pytest.mark.slow
def test_random_loader_builds_the_22b_vocoder_with_bwe(random23_root: Path) -> None:
    from ltx_core.model.audio_vae.vocoder import VocoderWithBWE
    from ltx_pipelines.utils import ModelLedger

    ledger = ModelLedger(
        dtype=torch.float32,
        device=torch.device("cpu"),
        checkpoint_path=str(random23_root / rw23.RANDOM_LAYOUT["checkpoint"]),
    )
    vocoder = rw.install_random_loaders(ledger, 0, torch.float32).vocoder()
    assert isinstance(vocoder, VocoderWithBWE)
    assert vocoder.output_sampling_rate == 48_000
    params = list(vocoder.parameters())
    assert sum(p.numel() for p in params) == rw23.PARAM_COUNTS["vocoder"]
    assert not any(p.is_meta for p in params) and all(torch.isfinite(p).all() for p in params)


@pytest.mark.slow
def test_backend_renders_a_tiny_shaped_random_ltx23_set(tmp_path: Path, tiny23_root: Path) -> None:
    """The random source's header-only form with the tiny 2.3 configs (a full-size set needs ~90 GB on a
    CPU): the whole backend on random 2.3 weights, 48 kHz audio from the random vocoder with BWE."""
    import shutil

    import numpy as np

    from ltx2_batch.backends import tiny23
    from ltx2_batch.backends.base import RenderRequest
    from ltx2_batch.backends.device import DevicePolicy
    from ltx2_batch.backends.factory import adapter
    from ltx2_batch.backends.models import ModelFiles
    from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec

    source = tiny23_root
    folder = tmp_path / "random23"
    gemma = folder / GEMMA_ROOT
    shutil.copytree(source / GEMMA_ROOT, gemma, ignore=shutil.ignore_patterns("model*.safetensors"))
    rw.write_placeholder(gemma / "model-random.safetensors", {})
    checkpoint_meta = {"config": json.dumps(tiny23.FULL_CONFIG), "model_version": tiny23.MODEL_VERSION}
    rw.write_placeholder(folder / "ckpt.safetensors", checkpoint_meta)
    files = ModelFiles(
        root=folder,
        source="random",
        checkpoint=folder / "ckpt.safetensors",
        is_fp8=False,
        gemma_root=gemma,
        distilled_lora=None,
        spatial_upsampler=None,
        temporal_upsampler=None,
        ic_lora=None,
        expected=(),
        fetch_sources=(),
        family=ModelFamily.ltx23,
    )
    weights = RandomWeights(
        ModelConfig(source=ModelSource.random, family=ModelFamily.ltx23, seed=0), tmp_path
    )
    backend = adapter()(files, DevicePolicy(device="cpu", dtype="float32", allow_fp8=False), weights)
    try:
        job = RenderJob(
            name="r",
            prompt="A cat walks on a sunny street.",
            width=64,
            height=64,
            num_frames=9,
            frame_rate=24.0,
            seed=1,
            pipeline=PipelineKind.DISTILLED,
            mode=RenderMode.VIDEO,
            upscale=UpscaleSpec(spatial=False),
        )
        out = backend.render(RenderRequest(job=job))
    finally:
        backend.close()
    assert out.frames.shape == (9, 64, 64, 3) and out.frames.std() > 0
    assert out.sample_rate == 48_000
    assert out.audio is not None and np.isfinite(out.audio).all()
    assert out.info["weights"] == "random"
