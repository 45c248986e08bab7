"""Full-size LTX-2.3 (22B) with random weights (`model=ltx23_random`): the 2.3 configurations as data, and
the header-only set that carries them. Everything else (the random state-dict loader swapped into the
official builders, the placeholder format, the tokenizer copied from the tiny set) is `random_weights.py`'s,
shared unchanged: this module only adds the 22B table.

Owns: the 22B configs, `PARAM_COUNTS` measured from them on the meta device, and the header-only set for
family ltx23 (the set lives under `<root>/random23`). Must not: write tensors, import torch at module level.

Where each configuration value comes from:
- transformer and text connectors: the published LTX-2.3 22B checkpoint header's `config` metadata, as a
  third-party copy of it reads (32 heads x 128, 48 layers, cross-attention 4096; audio 32 x 64, 2048;
  caption_channels 3840; gated attention in the blocks and the connectors; cross-attention AdaLN; the caption
  projection before the connectors with the three V2 flags false; connectors 32 x 128 over 8 layers, the audio
  connector 32 x 64; RoPE split/float64, max positions [20, 2048, 2048]). Keys ltx-core 1.0.0 does not read
  (`connector_num_learnable_registers` 128 = ltx-core's default, `connector_norm_output`,
  `text_encoder_norm_type`, `causal_temporal_positioning`, ...) are kept so the header reads as published.
- video VAE and audio VAE: the same header; their block lists and ddconfig equal the 19B set's
  (random_weights.py), so they are reused rather than copied.
- vocoder: the same header's nested form, which ltx-core builds as `VocoderWithBWE`: a 16 kHz AMP1/snakebeta
  vocoder (1536 channels, rates 5-2-2-2-2-2) and a BWE generator to 48 kHz (512 channels, rates 6-5-2-2-2,
  hop 80, n_fft 512, 64 mels).
- upsamplers: NOT in that header (separate files); ltx-core's configurator defaults, as for the 19B set
  (x2 spatial and x2 temporal; the x1.5 spatial upsampler is not modelled here).
- Gemma-3-12B: ltx-core's own constant, as for the 19B set (LTX-2.3 uses the same text encoder).
- `model_version` "2.3.0" in the checkpoint metadata, so ltx-pipelines' `detect_params` picks LTX-2.3's
  defaults exactly as for a published 2.3 file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx2_batch.backends import random_weights as rw

if TYPE_CHECKING:
    pass

MODEL_VERSION = "2.3.0"
RANDOM_DIR_NAME = "random23"
RANDOM_LAYOUT: dict[str, str] = {
    "checkpoint": "checkpoints/ltx-2.3-22b-random.safetensors",
    "spatial_upsampler": "upscalers/ltx-2.3-random-spatial-upscaler-x2.safetensors",
    "temporal_upsampler": "upscalers/ltx-2.3-random-temporal-upscaler-x2.safetensors",
    "gemma_root": "text_encoders/gemma3",
}

# fmt: off
TRANSFORMER_22B: dict[str, Any] = {
    "_class_name": "AVTransformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
    "attention_head_dim": 128, "attention_type": "default", "caption_channels": 3840,
    "cross_attention_dim": 4096, "double_self_attention": False, "dropout": 0.0, "in_channels": 128,
    "norm_elementwise_affine": False, "norm_eps": 1e-06, "norm_num_groups": 32, "num_attention_heads": 32,
    "num_embeds_ada_norm": 1000, "num_layers": 48, "num_vector_embeds": None, "only_cross_attention": False,
    "cross_attention_norm": True, "out_channels": 128, "upcast_attention": False,
    "use_linear_projection": False, "qk_norm": "rms_norm", "standardization_norm": "rms_norm",
    "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000.0, "causal_temporal_positioning": True,
    "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "use_audio_video_cross_attention": True,
    "share_ff": False, "audio_out_channels": 128, "audio_cross_attention_dim": 2048,
    "audio_positional_embedding_max_pos": [20], "av_cross_ada_norm": True, "use_embeddings_connector": True,
    "connector_attention_head_dim": 128, "connector_num_attention_heads": 32, "connector_num_layers": 8,
    "connector_positional_embedding_max_pos": [4096], "connector_num_learnable_registers": 128,
    "connector_norm_output": True, "use_middle_indices_grid": True, "apply_gated_attention": True,
    "connector_apply_gated_attention": True, "caption_projection_first_linear": False,
    "caption_projection_second_linear": False, "caption_proj_input_norm": False,
    "connector_learnable_registers_std": 1, "caption_proj_before_connector": True,
    "audio_connector_attention_head_dim": 64, "audio_connector_num_attention_heads": 32,
    "cross_attention_adaln": True, "text_encoder_norm_type": "per_token_rms", "rope_type": "split",
    "frequencies_precision": "float64",
}
_AMP = {"resblock": "AMP1", "stereo": True, "activation": "snakebeta", "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "use_tanh_at_final": False,
        "use_bias_at_final": False}
VOCODER_BWE: dict[str, Any] = {
    "vocoder": {**_AMP, "upsample_initial_channel": 1536, "upsample_rates": [5, 2, 2, 2, 2, 2],
                "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4]},
    "bwe": {**_AMP, "upsample_initial_channel": 512, "upsample_rates": [6, 5, 2, 2, 2],
            "upsample_kernel_sizes": [12, 11, 4, 4, 4], "apply_final_activation": False,
            "input_sampling_rate": 16000, "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512,
            "win_size": 512, "num_mels": 64},
}
FULL_CONFIG: dict[str, Any] = {"transformer": TRANSFORMER_22B, "vae": rw.VIDEO_VAE, "audio_vae": rw.AUDIO_VAE,
                               "vocoder": VOCODER_BWE}
SPATIAL_UPSAMPLER: dict[str, Any] = dict(rw.SPATIAL_UPSAMPLER)
TEMPORAL_UPSAMPLER: dict[str, Any] = dict(rw.TEMPORAL_UPSAMPLER)
# fmt: on

# Parameter counts of the configs above on the meta device (tests/integration/test_fullsize_meta23.py checks
# them against a fresh build through bench/gpu_fullsize.py --meta --family ltx23). The published "22B" is the
# diffusion model as the checkpoint stores it under `model.diffusion_model.*`: the transformer (18.99B) plus
# the text connectors and the V2 aggregate embeddings (3.17B) = 22.16B.
PARAM_COUNTS: dict[str, int] = {
    "transformer": 18_988_838_144,
    "embeddings_processor": 3_172_227_584,
    "video_encoder": 318_936_897,
    "video_decoder": 407_169_072,
    "audio_encoder": 21_333_008,
    "audio_decoder": 31_915_138,
    "vocoder": 128_537_448,
    "spatial_upsampler": 126_250_624,
    "temporal_upsampler": 130_968_192,
    "text_encoder": 12_187_325_040,
}


def component_sizes() -> list[rw.ComponentSize]:
    """Every 22B component built on the meta device: parameter/buffer counts."""
    return rw.component_sizes(FULL_CONFIG, SPATIAL_UPSAMPLER, TEMPORAL_UPSAMPLER)


def ensure_random_set(root: Path, tokenizer_source: Path) -> Path:
    """The 19B set's header-only layout with the 22B configs and `model_version` (idempotent, a few KB)."""
    root = Path(root)
    checkpoint_meta = {"config": json.dumps(FULL_CONFIG), "model_version": MODEL_VERSION}
    rw.write_placeholder(root / RANDOM_LAYOUT["checkpoint"], checkpoint_meta)
    rw.write_placeholder(root / RANDOM_LAYOUT["spatial_upsampler"], {"config": json.dumps(SPATIAL_UPSAMPLER)})
    rw.write_placeholder(
        root / RANDOM_LAYOUT["temporal_upsampler"], {"config": json.dumps(TEMPORAL_UPSAMPLER)}
    )
    # the Gemma folder as the 19B set writes it: 12B config, placeholder weights, the tiny set's tokenizer
    gemma = root / RANDOM_LAYOUT["gemma_root"]
    rw.write_placeholder(gemma / rw._GEMMA_PLACEHOLDER, {})
    for name in rw._TOKENIZER_FILES:
        rw._write_bytes(gemma / name, (Path(tokenizer_source) / name).read_bytes())
    rw._write_json(gemma / "config.json", rw.gemma_12b_config())
    processor = json.loads((Path(tokenizer_source) / "preprocessor_config.json").read_text())
    processor["size"] = {"height": 896, "width": 896}  # Gemma-3's SigLIP input
    rw._write_json(gemma / "preprocessor_config.json", processor)
    return root


def footprint_params(n_transformers: int) -> dict[str, int]:
    """Parameter counts per memory-policy group, as random_weights.footprint_params does for the 19B set."""
    other = sum(
        v for k, v in PARAM_COUNTS.items() if k not in ("transformer", "text_encoder", "audio_encoder")
    )
    return {
        "transformer": PARAM_COUNTS["transformer"] * n_transformers,
        "text_encoder": PARAM_COUNTS["text_encoder"],
        "other": other,
    }
