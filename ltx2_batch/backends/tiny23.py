"""Builds the tiny, randomly initialised LTX-2.3 set (`model=tiny23`) in the official 2.3 on-disk format.

Owns: the tiny 2.3 configs and the checkpoint writer for them. The 2.3 format differs from LTX-2's in what
this set exercises: gated attention in the transformer and the text connectors, cross-attention AdaLN
(`prompt_adaln_single`), the caption projection moved into the text encoder (the "V2" feature extractor:
per-token RMS norm and separate video/audio aggregate embeddings, `text_embedding_projection.video_/
audio_aggregate_embed`), the vocoder with bandwidth extension (a 16 kHz BigVGAN-style AMP1/snakebeta
vocoder, then a BWE generator to 48 kHz), and `model_version` 2.3.x in the metadata, which makes
ltx-pipelines' `detect_params` choose its LTX-2.3 defaults. Everything else (the folder layout, the atomic
build, the upsamplers, LoRAs, deterministic seeding) is `tiny.py`'s, and the tiny Gemma `tiny_gemma.py`'s.
Importing it is cheap and torch-free. Must not: write anywhere but the folder it is given.

The 2.3 keys and their published values were read from a third-party copy of the LTX-2.3 22B checkpoint's
`config` metadata (transformer `apply_gated_attention`, `connector_apply_gated_attention`,
`cross_attention_adaln`, `caption_proj_before_connector` with the three `caption_projection_*`/
`caption_proj_input_norm` flags false, `audio_connector_*` dims; vocoder `{"vocoder": {...AMP1...}, "bwe":
{input 16000, output 48000, hop 80, n_fft 512, 64 mels}}`); ltx-core 1.0.0's configurators are the authority
on which keys are read (they check the AMP1/snakebeta values and the V2 flags exactly).
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

from ltx2_batch.backends import tiny
from ltx2_batch.backends.tiny import TinyBuildReport
from ltx2_batch.backends.tiny_gemma import GEMMA_CONFIG, GEMMA_HIDDEN, build_gemma

TINY_RECIPE_VERSION = "tiny23-2"  # bump when any config or generation rule below changes (it feeds job ids)
TINY_DIR_NAME = "tiny23"
MODEL_VERSION = "2.3.0"  # the `model_version` metadata: "2.3..." selects ltx-pipelines' LTX_2_3_PARAMS
AUDIO_SAMPLE_RATE = 48_000

CHECKPOINT = "ltx-2.3-tiny-distilled.safetensors"
DISTILLED_LORA = "ltx-2.3-tiny-distilled-lora.safetensors"
IC_LORA = "ltx-2.3-tiny-ic-lora.safetensors"
SPATIAL_UPSAMPLER = "ltx-2.3-tiny-spatial-upscaler-x2.safetensors"
SPATIAL_UPSAMPLER_X1_5 = "ltx-2.3-tiny-spatial-upscaler-x1.5.safetensors"
TEMPORAL_UPSAMPLER = "ltx-2.3-tiny-temporal-upscaler-x2.safetensors"
GEMMA_ROOT = tiny.GEMMA_ROOT

TINY_LAYOUT: dict[str, str] = {  # role -> path relative to the tiny23 root
    "checkpoint": f"checkpoints/{CHECKPOINT}",
    "distilled_lora": f"checkpoints/{DISTILLED_LORA}",
    "ic_lora": f"checkpoints/{IC_LORA}",
    "spatial_upsampler": f"upscalers/{SPATIAL_UPSAMPLER}",
    "spatial_upsampler_x1_5": f"upscalers/{SPATIAL_UPSAMPLER_X1_5}",
    "temporal_upsampler": f"upscalers/{TEMPORAL_UPSAMPLER}",
    "gemma_root": GEMMA_ROOT,
}
_COMPLETE_MARKER = "tiny23_build.json"

# fmt: off
# The transformer: tiny's dims with the 2.3 switches. Without a caption projection in the transformer, the
# text connectors work at the transformer's widths (video 2x32 = 64, audio 2x16 = 32), and the cross-attention
# dims equal them.
TRANSFORMER: dict[str, Any] = {
    **tiny.TRANSFORMER_CONFIG,
    "apply_gated_attention": True, "cross_attention_adaln": True,
    "caption_proj_before_connector": True, "caption_projection_first_linear": False,
    "caption_proj_input_norm": False, "caption_projection_second_linear": False,
    "connector_apply_gated_attention": True,
    "connector_num_attention_heads": 2, "connector_attention_head_dim": 32,
    "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 16,
    "cross_attention_dim": 64, "audio_cross_attention_dim": 32,
    "caption_channels": GEMMA_HIDDEN,
    "text_encoder_norm_type": "per_token_rms", "causal_temporal_positioning": True,
}
# 16 kHz from 100 mel frames/s (5*4*2*2*2 = 160), then BWE x3: hop 80 at 16 kHz -> 200 frames/s, and the
# generator's 6*5*2*2*2 = 240 = 80 * 3 samples per frame at 48 kHz (the published bwe rates and hop).
_AMP = {"resblock": "AMP1", "stereo": True, "activation": "snakebeta", "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]], "use_tanh_at_final": False, "use_bias_at_final": False}
VOCODER: dict[str, Any] = {
    "vocoder": {**_AMP, "upsample_initial_channel": 64, "upsample_rates": [5, 4, 2, 2, 2],
                "upsample_kernel_sizes": [10, 8, 4, 4, 4]},
    "bwe": {**_AMP, "upsample_initial_channel": 64, "upsample_rates": [6, 5, 2, 2, 2],
            "upsample_kernel_sizes": [12, 11, 4, 4, 4], "apply_final_activation": False,
            "input_sampling_rate": 16000, "output_sampling_rate": AUDIO_SAMPLE_RATE, "hop_length": 80,
            "n_fft": 512, "win_size": 512, "num_mels": 64},
}
FULL_CONFIG: dict[str, Any] = {
    "transformer": TRANSFORMER, "vae": tiny.FULL_CONFIG["vae"], "audio_vae": tiny.FULL_CONFIG["audio_vae"],
    "vocoder": VOCODER,
}
SPATIAL_UP: dict[str, Any] = dict(tiny._SPATIAL_UP)
SPATIAL_UP_X1_5: dict[str, Any] = {**tiny._SPATIAL_UP, "spatial_scale": 1.5, "rational_resampler": True}
TEMPORAL_UP: dict[str, Any] = dict(tiny._TEMPORAL_UP)
# fmt: on


def is_built(root: Path, seed: int = 0) -> bool:
    """Complete, and built by this recipe with this seed (an older recipe's set is rebuilt)."""
    marker = Path(root) / _COMPLETE_MARKER
    if not marker.is_file() or not all((Path(root) / rel).exists() for rel in TINY_LAYOUT.values()):
        return False
    try:
        return bool(json.loads(marker.read_text()) == {"recipe": TINY_RECIPE_VERSION, "seed": seed})
    except ValueError:
        return False


def ensure_tiny_models(root: Path, seed: int = 0) -> TinyBuildReport:
    """Build the tiny 2.3 set into `root` unless it is already there (atomic, race-safe: see tiny.py)."""
    return tiny.build_atomically(Path(root), lambda r: is_built(r, seed), lambda tmp: _build_into(tmp, seed))


def _build_into(root: Path, seed: int) -> None:
    from ltx2_batch.backends import compat

    compat.prepare()
    import torch

    tiny._import_builders()  # first imports may draw from the global RNG: done before seeding it
    # the V2 embeddings processor is sized by ltx-core's Gemma constant: the tiny Gemma's while building
    with torch.random.fork_rng(devices=[]), compat.gemma_config(GEMMA_CONFIG):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        build_gemma(root / GEMMA_ROOT, gen, tiny._storage_dtype())
        transformer = _build_checkpoint(root / TINY_LAYOUT["checkpoint"], gen)
        for role, cfg in (
            ("spatial_upsampler", SPATIAL_UP),
            ("spatial_upsampler_x1_5", SPATIAL_UP_X1_5),
            ("temporal_upsampler", TEMPORAL_UP),
        ):
            tiny._build_upsampler(root / TINY_LAYOUT[role], cfg, gen)
        shapes = {n: tuple(p.shape) for n, p in transformer.named_parameters()}
        tiny.write_tiny_lora(root / TINY_LAYOUT["distilled_lora"], shapes, gen, ("attn1.to_q", "attn1.to_v"))
        tiny.write_tiny_lora(root / TINY_LAYOUT["ic_lora"], shapes, gen, ("attn1.to_k", "ff."))
        (root / _COMPLETE_MARKER).write_text(json.dumps({"recipe": TINY_RECIPE_VERSION, "seed": seed}))


def _build_checkpoint(path: Path, gen: Any) -> Any:
    """Single-file 2.3 checkpoint: transformer, V2 text projection + connectors, video/audio VAE, vocoder
    with BWE; `config` and `model_version` in the metadata."""
    from ltx_core.model.audio_vae import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator

    tensors: dict[str, Any] = {}
    transformer = _seed_unreset(tiny._materialize(LTXModelConfigurator.from_config(FULL_CONFIG)), gen)
    tensors.update(tiny._renamed(tiny._fill(transformer.state_dict(), gen), "model.diffusion_model."))
    processor = _seed_unreset(
        tiny._materialize(EmbeddingsProcessorConfigurator.from_config(FULL_CONFIG)), gen
    )
    tensors.update(
        tiny._renamed(
            tiny._fill(processor.state_dict(), gen),
            "",
            {
                f"feature_extractor.{m}_aggregate_embed.": f"text_embedding_projection.{m}_aggregate_embed."
                for m in ("video", "audio")
            }
            | {
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
    ):
        module = configurator.from_config(FULL_CONFIG)
        tensors.update(tiny._renamed(tiny._fill(module.state_dict(), gen), prefix, shared))
    vocoder = VocoderConfigurator.from_config(FULL_CONFIG)
    _set_stft_bases(vocoder, gen)
    tensors.update(tiny._renamed(tiny._fill(vocoder.state_dict(), gen), "vocoder."))
    metadata = {"config": json.dumps(FULL_CONFIG), "model_version": MODEL_VERSION}
    write_safetensors_sorted(tensors, path, metadata)
    return transformer


def _seed_unreset(module: Any, gen: Any) -> Any:
    """Parameters of submodules without `reset_parameters` (the connectors' learnable registers, the
    scale-shift tables) are left as uninitialised memory by `to_empty`: whatever bytes the allocator hands
    out, so a build would differ from the next. Draw them from `gen` instead."""
    import torch

    with torch.no_grad():
        for sub in module.modules():
            if callable(getattr(sub, "reset_parameters", None)):
                continue
            for param in sub.parameters(recurse=False):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
    return module


def _set_stft_bases(vocoder: Any, gen: Any) -> None:
    """The BWE's mel front end ships its STFT bases and mel filterbank as checkpoint buffers (zeros when
    constructed): give it a real Hann-windowed DFT and a non-negative random filterbank, so the BWE
    generator sees a spectrum of the vocoder's output rather than a constant."""
    import torch

    stft = vocoder.mel_stft.stft_fn
    n_fft = stft.forward_basis.shape[-1]
    n_freqs = n_fft // 2 + 1
    t = torch.arange(n_fft, dtype=torch.float64)
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * t / n_fft)
    k = torch.arange(n_freqs, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * t[None, :] / n_fft
    basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # real rows, then imaginary rows
    stft.forward_basis.copy_(basis[:, None, :].float())
    stft.inverse_basis.copy_(basis[:, None, :].float())
    mel = vocoder.mel_stft.mel_basis
    mel.copy_(torch.rand(mel.shape, generator=gen) * (2.0 / n_freqs))


def write_safetensors_sorted(tensors: dict[str, Any], path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file with its header's keys in sorted order (metadata included): byte-identical across
    builds. (The safetensors writer keeps metadata in a hash map, so two or more metadata keys come out in a
    different order from run to run.) Written to a temporary name, then renamed."""
    import torch

    entries: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    dtype_names = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    for name in sorted(tensors):
        tensor = tensors[name].contiguous().cpu()
        raw = tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        entries[name] = {
            "dtype": dtype_names[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)))
        handle.write(header)
        for blob in blobs:
            handle.write(blob)
    tmp.replace(path)


def main() -> None:
    """`python -m ltx2_batch.backends.tiny23 [ROOT] [SEED]`: build or confirm the tiny 2.3 set."""
    import sys

    args = sys.argv[1:]
    root = Path(args[0] if args else f"models/{TINY_DIR_NAME}")
    report = ensure_tiny_models(root, seed=int(args[1]) if args[1:] else 0)
    total = sum(report.bytes_by_file.values())
    print(
        json.dumps(
            {
                "root": str(report.root),
                "built": report.built,
                "seconds": round(report.seconds, 2),
                "total_bytes": total,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
