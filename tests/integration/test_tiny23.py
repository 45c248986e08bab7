"""model=tiny23: the embedded LTX-2.3-format set. Its header reads as LTX-2.3 (to us and to the official
`detect_params`), the official configurators build the 2.3 parts from it (V2 text feature extractor,
gated attention, cross-attention AdaLN, the vocoder with bandwidth extension), its build is deterministic,
and jobs render through the CLI on it (distilled and guided two-stage): frames, fps and 48 kHz audio are
checked on the output files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch.backends import compat
from ltx2_batch.backends import tiny23 as t23
from ltx2_batch.backends.checkpoint_info import checkpoint_info, read_safetensors_metadata
from ltx2_batch.backends.models import DEFAULT_REQUIRED
from ltx2_batch.backends.weights import TinyWeights, model_fingerprint
from ltx2_batch.cli import run
from ltx2_batch.core.families import CheckpointKind, ModelFamily
from ltx2_batch.media.probe import probe
from tests.conftest import REPO_ROOT, compose_app, write_manifest

pytestmark = pytest.mark.slow

MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 17, frame_rate: 24}
jobs:
  - name: distilled
    prompt: "A cat walks on a sunny street, soft piano music."
    pipeline: distilled
    seed: 1
  - name: two_stage
    prompt: "A drone shot of mountains at sunset with wind noise."
    pipeline: ti2vid
    num_inference_steps: 2
    seed: 2
"""


@pytest.fixture
def models_root(tiny23_root: Path) -> Path:
    """The session's models root, where the session's tiny23 set is built once (conftest.tiny23_root)."""
    return tiny23_root.parent


def test_header_is_ltx23_format(models_root: Path) -> None:
    path = models_root / "tiny23" / t23.TINY_LAYOUT["checkpoint"]
    info = checkpoint_info(path)
    assert info.family is ModelFamily.ltx23
    assert info.model_version.startswith("2.3")
    assert info.kind is CheckpointKind.distilled
    assert info.has_2_3_format
    assert info.vocoder_bwe
    compat.prepare()
    from ltx_pipelines.utils.constants import LTX_2_3_PARAMS, detect_params
    from safetensors import safe_open

    assert detect_params(str(path)) is LTX_2_3_PARAMS
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
    assert "text_embedding_projection.video_aggregate_embed.weight" in keys
    assert "text_embedding_projection.audio_aggregate_embed.weight" in keys
    assert not any("aggregate_embed" in k and "_aggregate_embed" not in k for k in keys)  # no V1 extractor
    assert not any(".caption_projection." in k for k in keys)  # projection lives in the text encoder now
    assert any(k.endswith("attn1.to_gate_logits.weight") for k in keys)
    assert any("video_embeddings_connector" in k and "to_gate_logits" in k for k in keys)
    assert "model.diffusion_model.prompt_adaln_single.linear.weight" in keys
    assert any(k.startswith("vocoder.bwe_generator.") for k in keys)
    assert "vocoder.mel_stft.stft_fn.forward_basis" in keys


def test_official_configurators_build_the_2_3_parts(models_root: Path) -> None:
    compat.prepare()
    from ltx_core.model.audio_vae import VocoderConfigurator
    from ltx_core.model.audio_vae.vocoder import VocoderWithBWE
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2

    meta = read_safetensors_metadata(models_root / "tiny23" / t23.TINY_LAYOUT["checkpoint"])
    config = json.loads(meta["config"])
    vocoder = VocoderConfigurator.from_config(config)
    assert isinstance(vocoder, VocoderWithBWE)
    assert (vocoder.input_sampling_rate, vocoder.output_sampling_rate) == (16_000, 48_000)
    with compat.gemma_config(compat.read_gemma_config(models_root / "tiny23" / t23.GEMMA_ROOT)):
        processor = EmbeddingsProcessorConfigurator.from_config(config)
    assert isinstance(processor.feature_extractor, FeatureExtractorV2)


def test_build_is_deterministic_and_resolves_as_a_tiny_ltx23_set(models_root: Path, tmp_path: Path) -> None:
    again = t23.ensure_tiny_models(tmp_path / "tiny23")
    assert again.built
    first = t23.ensure_tiny_models(models_root / "tiny23")
    assert not first.built  # already there: not rebuilt
    for rel, size in first.bytes_by_file.items():
        assert again.bytes_by_file[rel] == size, rel
        assert (tmp_path / "tiny23" / rel).read_bytes() == (models_root / "tiny23" / rel).read_bytes(), rel
    cfg = compose_app("model=tiny23", f"model.root={models_root}").model
    files = TinyWeights(cfg, REPO_ROOT).resolve(allow_fp8=False)
    assert files.root == models_root / "tiny23"
    assert files.family is ModelFamily.ltx23
    assert files.ic_lora == models_root / "tiny23" / t23.TINY_LAYOUT["ic_lora"]
    tiny = compose_app("model=tiny", f"model.root={models_root}").model
    assert model_fingerprint(cfg, REPO_ROOT) != model_fingerprint(tiny, REPO_ROOT)


def test_cli_renders_distilled_and_two_stage_with_48khz_audio(models_root: Path, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", MANIFEST)
    app = compose_app(
        f"manifest={manifest}", "model=tiny23", f"model.root={models_root}", f"output.root={tmp_path / 'out'}"
    )
    assert run(app, REPO_ROOT) == 0
    table = pq.read_table(tmp_path / "out" / "m" / "ledger.parquet").to_pandas()
    rows: pd.DataFrame = table[(table.row_kind == "job") & (table.status == "done")]
    assert sorted(rows.job_name) == ["distilled", "two_stage"]
    for _, row in rows.iterrows():
        info = probe(row.output_path)
        assert info.frame_count == 17
        assert info.frame_rate == 24.0
        assert (info.width, info.height) == (64, 64)
        assert info.audio_sample_rate == 48_000
        assert info.audio_channels == 2
        assert info.audio_duration_s == pytest.approx(17 / 24, abs=1e-3)
        sidecar = json.loads(Path(row.sidecar_path).read_text())
        assert sidecar["model_name"] == "tiny23"
        assert (sidecar["backend"]["model_family"], sidecar["backend"]["model_version"]) == ("ltx23", "2.3.0")
        assert sidecar["backend"]["pipeline"] == row.job_name.replace("two_stage", "ti2vid")


def test_backend_check_uses_the_family_window(models_root: Path, tiny_root: Path) -> None:
    """A cold backend (nothing loaded) accepts a 241-frame window on LTX-2.3 and refuses it on LTX-2."""
    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec
    from ltx2_batch.errors import FatalBackendError

    job = RenderJob(
        name="w",
        prompt="p",
        width=64,
        height=64,
        num_frames=241,
        frame_rate=24.0,
        seed=1,
        pipeline=PipelineKind.DISTILLED,
        mode=RenderMode.VIDEO,
        upscale=UpscaleSpec(spatial=False),
    )
    on_23 = create_backend(compose_app("model=tiny23", f"model.root={models_root}").model, REPO_ROOT)
    try:
        on_23.check(job)
        with pytest.raises(FatalBackendError, match="at most 481"):
            on_23.check(dataclasses.replace(job, num_frames=489))
    finally:
        on_23.close()
    on_2 = create_backend(compose_app("model=tiny", f"model.root={tiny_root.parent}").model, REPO_ROOT)
    try:
        with pytest.raises(FatalBackendError, match="at most 121"):
            on_2.check(job)
    finally:
        on_2.close()


def test_x1_5_upsampler_file_upsamples_by_one_and_a_half(models_root: Path) -> None:
    """The set ships an x1.5 spatial upsampler (rational resampler) for the x1.5 upscale to come."""
    compat.prepare()
    import torch
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from safetensors.torch import load_file

    path = models_root / "tiny23" / t23.TINY_LAYOUT["spatial_upsampler_x1_5"]
    config = json.loads(read_safetensors_metadata(path)["config"])
    module = LatentUpsamplerConfigurator.from_config(config)
    module.load_state_dict(load_file(str(path)), strict=True)
    with torch.inference_mode():
        out = module.float()(torch.randn(1, 128, 2, 4, 4, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 128, 2, 6, 6)
    assert torch.isfinite(out).all()


def test_a_missing_tiny23_file_names_its_builder(models_root: Path) -> None:
    from ltx2_batch.errors import MissingWeightsError

    cfg = compose_app(
        "model=tiny23", f"model.root={models_root}", "model.distilled_lora=checkpoints/absent.safetensors"
    ).model
    with pytest.raises(MissingWeightsError) as err:
        TinyWeights(cfg, REPO_ROOT).resolve(allow_fp8=False).require(DEFAULT_REQUIRED)
    text = str(err.value)
    assert str(models_root / "tiny23" / "checkpoints/absent.safetensors") in text
    assert f"python -m ltx2_batch.backends.tiny23 {models_root / 'tiny23'}" in text
