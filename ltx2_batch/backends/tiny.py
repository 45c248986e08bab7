"""Builds the tiny, randomly initialised LTX-2 model set in the official on-disk format (embedded default).

Owns: the tiny configs, the deterministic (seeded) weight generation, and the folder layout, which mirrors the
real one (checkpoints/, upscalers/, text_encoders/gemma3/) so the same discovery code finds both. The build is
atomic: everything is written into a sibling temporary folder that is renamed into place, so a crash never
leaves a half-built set that looks complete. Nothing is downloaded; the tiny Gemma folder (and its locally
trained tokenizer) is tiny_gemma.py's. Importing it is cheap and torch-free (torch, safetensors and ltx_core
load only inside the builders), so the driver can read TINY_RECIPE_VERSION / TINY_LAYOUT. It imports
ltx_core's model configurators lazily: the official format can only be produced by the official classes.
Must not: write anywhere but the folder it is given, or leave ltx-core's Gemma constant changed.

Sizes that the official code fixes and that therefore cannot shrink: video latent channels 128, VAE scale
factors (t=8, h=w=32), audio latent 8 channels x 16 mel bins, audio VAE `ch` 128, vocoder input 128.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx2_batch.backends.tiny_gemma import GEMMA_CONFIG, GEMMA_HIDDEN, build_gemma

TINY_DIR_NAME = "tiny"  # the folder the set is built into, under the models root
TINY_RECIPE_VERSION = "tiny-5"  # bump when any config or generation rule below changes (it feeds job ids)

CHECKPOINT = "ltx-2-tiny-distilled.safetensors"
DISTILLED_LORA = "ltx-2-tiny-distilled-lora.safetensors"
IC_LORA = "ltx-2-tiny-ic-lora.safetensors"
SPATIAL_UPSAMPLER = "ltx-2-tiny-spatial-upscaler-x2.safetensors"
TEMPORAL_UPSAMPLER = "ltx-2-tiny-temporal-upscaler-x2.safetensors"
GEMMA_ROOT = "text_encoders/gemma3"

TINY_LAYOUT: dict[str, str] = {  # role -> path relative to the tiny root
    "checkpoint": f"checkpoints/{CHECKPOINT}",
    "distilled_lora": f"checkpoints/{DISTILLED_LORA}",
    "ic_lora": f"checkpoints/{IC_LORA}",
    "spatial_upsampler": f"upscalers/{SPATIAL_UPSAMPLER}",
    "temporal_upsampler": f"upscalers/{TEMPORAL_UPSAMPLER}",
    "gemma_root": GEMMA_ROOT,
}
_COMPLETE_MARKER = "tiny_build.json"
STORAGE_DTYPE_NAME = "bfloat16"
_MATRIX_NDIM = 2  # a LoRA pairs with the 2-D (linear) weights only

# fmt: off
_TRANSFORMER = {
    # values ltx-core checks
    "dropout": 0.0, "attention_bias": True, "num_vector_embeds": None, "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000, "use_linear_projection": False, "only_cross_attention": False,
    "cross_attention_norm": True, "double_self_attention": False, "upcast_attention": False,
    "standardization_norm": "rms_norm", "norm_elementwise_affine": False, "qk_norm": "rms_norm",
    "positional_embedding_type": "rope", "use_audio_video_cross_attention": True, "share_ff": False,
    "av_cross_ada_norm": True, "use_middle_indices_grid": True,
    # tiny dims (19B: 32 heads x 128, 48 layers; audio 32 x 64; caption 3840)
    "num_attention_heads": 2, "attention_head_dim": 32, "num_layers": 2,
    "in_channels": 128, "out_channels": 128, "cross_attention_dim": 64,
    "audio_num_attention_heads": 2, "audio_attention_head_dim": 16,
    "audio_in_channels": 128, "audio_out_channels": 128, "audio_cross_attention_dim": 32,
    "caption_channels": GEMMA_HIDDEN, "norm_eps": 1e-6, "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048], "audio_positional_embedding_max_pos": [20],
    "timestep_scale_multiplier": 1000, "av_ca_timestep_scale_multiplier": 1000,
    "rope_type": "split", "frequencies_precision": "float64",
    "connector_num_attention_heads": 2, "connector_attention_head_dim": GEMMA_HIDDEN // 2,
    "connector_num_layers": 1, "connector_positional_embedding_max_pos": [4096],
}
_VAE = {
    "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128, "patch_size": 4,
    "norm_layer": "pixel_norm", "latent_log_var": "uniform", "spatial_padding_mode": "zeros",
    "causal_decoder": False, "timestep_conditioning": False, "decoder_base_channels": 8,
    "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 1}],
                       ["compress_time_res", {"multiplier": 1}], ["compress_all_res", {"multiplier": 1}],
                       ["compress_all_res", {"multiplier": 1}]],
    "decoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space", {"multiplier": 2}],
                       ["compress_time", {"multiplier": 2}], ["compress_all", {"multiplier": 2}],
                       ["compress_all", {"multiplier": 2}], ["res_x", {"num_layers": 1}]],
}
_AUDIO_VAE = {
    "model": {"params": {"sampling_rate": 16000, "ddconfig": {
        "ch": 128, "out_ch": 2, "ch_mult": [1, 1, 1], "num_res_blocks": 0, "attn_resolutions": [],
        "resolution": 256, "z_channels": 8, "double_z": True, "in_channels": 2, "mel_bins": 64,
        "norm_type": "pixel", "causality_axis": "height", "dropout": 0.0, "mid_block_add_attention": False,
        "attn_type": "vanilla", "resamp_with_conv": True}}},
    "preprocessing": {"stft": {"hop_length": 160, "filter_length": 1024, "causal": True},
                      "mel": {"n_mel_channels": 64}},
}
_VOCODER = {
    "resblock": "1", "stereo": True, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
    "upsample_rates": [6, 5, 2, 2, 2], "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "upsample_initial_channel": 64, "output_sampling_rate": 24000, "activation": "snake",
    "use_tanh_at_final": True, "use_bias_at_final": True,
}
_SPATIAL_UP = {"in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
               "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0,
               "rational_resampler": False}
_TEMPORAL_UP = {**_SPATIAL_UP, "spatial_upsample": False, "temporal_upsample": True}
FULL_CONFIG = {"transformer": _TRANSFORMER, "vae": _VAE, "audio_vae": _AUDIO_VAE, "vocoder": _VOCODER}
TRANSFORMER_CONFIG: dict[str, Any] = _TRANSFORMER  # what the LTX-2.3 tiny set extends (tiny23.py)

# fmt: on


@dataclass(frozen=True)
class TinyBuildReport:
    """What `ensure_tiny_models` did: where the set is, how long the build took, and each file's size."""

    root: Path
    seconds: float
    built: bool  # False when the set was already there
    bytes_by_file: dict[str, int]


def is_built(root: Path, seed: int = 0) -> bool:
    """Complete, and built by this recipe with this seed (an older recipe's set is rebuilt)."""
    marker = root / _COMPLETE_MARKER
    if not marker.is_file() or not all((root / rel).exists() for rel in TINY_LAYOUT.values()):
        return False
    try:
        return bool(json.loads(marker.read_text()) == {"recipe": TINY_RECIPE_VERSION, "seed": seed})
    except ValueError:
        return False


def ensure_tiny_models(root: Path, seed: int = 0) -> TinyBuildReport:
    """Build the tiny set into `root` unless it is already there. Concurrent builders are safe: each builds in
    its own temporary sibling folder and renames it into place; a loser of that race discards its copy."""
    return build_atomically(Path(root), lambda r: is_built(r, seed), lambda tmp: _build_into(tmp, seed))


def build_atomically(
    root: Path, complete: Callable[[Path], bool], build: Callable[[Path], None]
) -> TinyBuildReport:
    """Run `build` into a temporary sibling of `root` and rename it into place, unless `complete(root)`
    already holds (shared by every embedded set's builder)."""
    if complete(root):
        return TinyBuildReport(root, 0.0, built=False, bytes_by_file=_sizes(root))
    t0 = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the set is shared read-only data
    stale = root.parent / f".{root.name}.stale-{tmp.name.rsplit('-', 1)[-1]}"
    try:
        build(tmp)
        if root.exists() and not complete(root):
            root.replace(stale)  # an incomplete set or another recipe's: move aside, delete below
        try:
            tmp.replace(root)
        except OSError:
            if not complete(root):  # not a lost race to an identical build: surface the error
                raise
    finally:
        for leftover in (tmp, stale):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return TinyBuildReport(root, time.perf_counter() - t0, built=True, bytes_by_file=_sizes(root))


def _sizes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def _build_into(root: Path, seed: int) -> None:
    from ltx2_batch.backends import compat

    compat.prepare()
    import torch

    _import_builders()  # first imports may draw from the global RNG: get them done before seeding it
    # reset_parameters() and HF init draw from the global generator: seed it, restore the caller state after;
    # the embeddings processor is sized by ltx-core's Gemma constant: the tiny Gemma's while building
    with torch.random.fork_rng(devices=[]), compat.gemma_config(GEMMA_CONFIG):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        build_gemma(root / GEMMA_ROOT, gen, _storage_dtype())
        modules = _build_checkpoint(root / TINY_LAYOUT["checkpoint"], gen)
        for role, cfg in (("spatial_upsampler", _SPATIAL_UP), ("temporal_upsampler", _TEMPORAL_UP)):
            _build_upsampler(root / TINY_LAYOUT[role], cfg, gen)
        transformer_shapes = {n: tuple(p.shape) for n, p in modules.named_parameters()}
        write_tiny_lora(
            root / TINY_LAYOUT["distilled_lora"], transformer_shapes, gen, ("attn1.to_q", "attn1.to_v")
        )
        write_tiny_lora(
            root / TINY_LAYOUT["ic_lora"],
            transformer_shapes,
            gen,
            ("attn1.to_k", "ff."),
        )  # no reference_downscale_factor metadata: ltx_pipelines reads its absence as 1
        (root / _COMPLETE_MARKER).write_text(json.dumps({"recipe": TINY_RECIPE_VERSION, "seed": seed}))


def _import_builders() -> None:
    """Everything the builders import lazily, imported up front (see _build_into)."""
    import ltx_core.model.audio_vae
    import ltx_core.model.transformer
    import ltx_core.model.upsampler
    import ltx_core.model.video_vae
    import ltx_core.text_encoders.gemma  # noqa: F401 - imported for the build, not used here
    import safetensors.torch  # noqa: F401 - imported for the build, not used here
    import tokenizers  # noqa: F401 - imported for the build, not used here
    import transformers.models.gemma3  # noqa: F401 - imported for the build, not used here


def write_tiny_lora(
    path: Path,
    transformer_shapes: dict[str, tuple[int, ...]],
    gen: Any,
    targets: tuple[str, ...],
    rank: int = 4,
    scale: float = 0.05,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A LoRA in the comfy key format ltx-core reads (`diffusion_model.<module>.lora_A/B.weight`), for every
    2-D transformer weight whose name contains one of `targets`. Also used by tests to make a user LoRA."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, shape in sorted(transformer_shapes.items()):
        if not (name.endswith(".weight") and len(shape) == _MATRIX_NDIM and any(t in name for t in targets)):
            continue
        base = name[: -len(".weight")]
        lora_a = torch.randn(rank, shape[1], generator=gen) * scale
        lora_b = torch.randn(shape[0], rank, generator=gen) * scale
        tensors[f"diffusion_model.{base}.lora_A.weight"] = lora_a.to(_storage_dtype())
        tensors[f"diffusion_model.{base}.lora_B.weight"] = lora_b.to(_storage_dtype())
    if not tensors:
        raise ValueError(f"no transformer weight matches {targets}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors writes metadata from a Rust HashMap: with two or more keys their order (so the file bytes)
    # varies from call to call. One key keeps the tiny set byte-identical across builds.
    save_file(tensors, str(path), metadata=metadata or {"format": "pt"})
    return path


def _storage_dtype() -> Any:
    import torch

    return getattr(torch, STORAGE_DTYPE_NAME)


def _fill(state: dict[str, Any], gen: Any) -> dict[str, Any]:
    """Make every tensor finite, small and seeded: uninitialised (torch.empty) buffers are replaced, the VAE
    latent statistics become the identity (mean 0, std 1)."""
    import torch

    out = {}
    for key, value in state.items():
        tensor = value.detach().float().cpu().contiguous()
        if key.endswith("std-of-means"):
            tensor = torch.ones_like(tensor)
        elif key.endswith("mean-of-means"):
            tensor = torch.zeros_like(tensor)
        elif "scale_shift_table" in key or not torch.isfinite(tensor).all():
            tensor = torch.randn(tensor.shape, generator=gen) * 0.02
        out[key] = tensor.to(_storage_dtype())
    return out


def _renamed(state: dict[str, Any], prefix: str, shared: dict[str, str] | None = None) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        for src, dst in (shared or {}).items():
            if key.startswith(src):
                out[dst + key[len(src) :]] = value
                break
        else:
            out[prefix + key] = value
    return out


def _materialize(module: Any) -> Any:
    """Real tensors for a meta-built module: NaN first, then each submodule's own `reset_parameters` from the
    seeded global generator; `_fill` then replaces whatever is still NaN (never initialised) from the seeded
    generator. `to_empty` alone leaves whatever the allocator had, which depends on what the process did
    before (a heap reused after other work gave other bytes, and finite garbage was kept)."""
    module = module.to_empty(device="cpu")
    for tensor in [*module.parameters(), *module.buffers()]:
        tensor.data.fill_(float("nan") if tensor.is_floating_point() else 0)
    for sub in module.modules():
        if callable(getattr(sub, "reset_parameters", None)):
            sub.reset_parameters()
    return module


def _build_checkpoint(path: Path, gen: Any) -> Any:
    """Single-file checkpoint (transformer, text connectors, video/audio VAE, vocoder), config in metadata."""
    from ltx_core.model.audio_vae import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    transformer = _materialize(LTXModelConfigurator.from_config(FULL_CONFIG))
    tensors.update(_renamed(_fill(transformer.state_dict(), gen), "model.diffusion_model."))
    processor = _materialize(EmbeddingsProcessorConfigurator.from_config(FULL_CONFIG))
    tensors.update(
        _renamed(
            _fill(processor.state_dict(), gen),
            "",
            {
                "feature_extractor.aggregate_embed.": "text_embedding_projection.aggregate_embed.",
                "video_connector.": "model.diffusion_model.video_embeddings_connector.",
                "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
            },
        )
    )
    stats = {"per_channel_statistics.": "vae.per_channel_statistics."}
    audio_stats = {"per_channel_statistics.": "audio_vae.per_channel_statistics."}
    for configurator, prefix, shared in (
        (VideoEncoderConfigurator, "vae.encoder.", stats),
        (VideoDecoderConfigurator, "vae.decoder.", stats),
        (AudioEncoderConfigurator, "audio_vae.encoder.", audio_stats),
        (AudioDecoderConfigurator, "audio_vae.decoder.", audio_stats),
        (VocoderConfigurator, "vocoder.", None),
    ):
        tensors.update(
            _renamed(_fill(configurator.from_config(FULL_CONFIG).state_dict(), gen), prefix, shared)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # only "config" (no model_version): one metadata key keeps the bytes stable; detect_params() then uses
    # LTX-2.0 defaults, which is what a 2.0 checkpoint gets
    save_file(tensors, str(path), metadata={"config": json.dumps(FULL_CONFIG)})
    return transformer


def _build_upsampler(path: Path, cfg: dict[str, Any], gen: Any) -> None:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from safetensors.torch import save_file

    module = LatentUpsamplerConfigurator.from_config(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_fill(module.state_dict(), gen), str(path), metadata={"config": json.dumps(cfg)})


def main() -> None:
    """`python -m ltx2_batch.backends.tiny [ROOT] [SEED]`: build or confirm the tiny set."""
    import sys

    args = sys.argv[1:]
    root = Path(args[0] if args else "models/tiny")
    report = ensure_tiny_models(root, seed=int(args[1]) if args[1:] else 0)
    print(
        json.dumps(
            {
                "root": str(report.root),
                "built": report.built,
                "seconds": round(report.seconds, 2),
                "total_bytes": sum(report.bytes_by_file.values()),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
