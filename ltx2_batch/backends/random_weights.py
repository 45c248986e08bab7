"""Full-size LTX-2 with random weights (`model=ltx2_random`): official configs, built on the device, no file.

Owns: the full-size configurations (19B transformer + text connectors, video VAE, audio VAE, vocoder, spatial
and temporal upsamplers, Gemma-3-12B), a folder of header-only "checkpoints" that carry those configs in the
official safetensors metadata but no tensors (a few KB), and `RandomStateDictLoader`, an ltx-core
`StateDictLoader` that, for those header-only files, returns small seeded random tensors generated directly on
the target device for every key the official meta model has. `install_random_loaders` swaps it into the
builders of a `ModelLedger`, so the official build path (meta model, module ops, sd_ops incl. the fp8
downcast, `load_state_dict(assign=True)`) and the whole backend run exactly as with real weights. LoRA files
are real files and load from disk unchanged. No 40 GB file is ever written.
Must not: write tensors to disk, import ltx_pipelines, touch anything but the folder it is given.

Where the configs come from:
- transformer: ltx-core's `LTXModelConfigurator` defaults for LTX-2 (2.0) 19B (32x128 video, 48 layers,
  audio 32x64, cross-attention 4096/2048) with caption_channels 3840 (Gemma-3-12B hidden size), the 2.0-era
  text path (caption projection inside the transformer) and the text connectors at ltx-core's defaults
  (30x128, 2 layers): 18.88B parameters, as the spike measured. Not in the packages as one dict.
- video VAE: NOT known from the packages (ltx-core's configurator defaults leave `encoder_blocks` and
  `decoder_blocks` empty). The block lists are third-party readings of the published checkpoint header
  (TensorRT-LLM's ltx2 VAE test config and two independent converters agree): decoder base 128 channels,
  res_x 4/6/4/2/2 between compress_space/time/all. Chosen because they give the published 8x32x32
  compression and the published decoder conv_in shape [1024, 128, 3, 3, 3].
- audio VAE: the published header's ddconfig (ch 128, ch_mult 1-2-4, 2 res blocks, no attention, 64 mels).
- vocoder, upsamplers: ltx-core's configurator defaults (HiFi-GAN 1024 channels, kernels 3/7/11; upsampler
  512 mid channels, 4 blocks per stage), taken to be the 2.0 release's.
- Gemma-3-12B: ltx-core's own constant `GEMMA3_CONFIG_FOR_LTX`. The tokenizer is the tiny set's locally
  trained one (its ids are valid rows of the 262k vocabulary; a GPU box may be offline).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

RANDOM_DIR_NAME = "random"  # the folder the header-only set is written into, under the models root
RANDOM_RECIPE_VERSION = "random-1"
MARKER_KEY = "ltx2_batch_random"  # metadata key that marks a header-only placeholder file
INIT_STD_SCALE = 0.5  # weights ~ N(0, (0.5/sqrt(fan_in))^2): activations stay O(1) through 48 layers

RANDOM_LAYOUT: dict[str, str] = {
    "checkpoint": "checkpoints/ltx-2-19b-random.safetensors",
    "spatial_upsampler": "upscalers/ltx-2-random-spatial-upscaler-x2.safetensors",
    "temporal_upsampler": "upscalers/ltx-2-random-temporal-upscaler-x2.safetensors",
    "gemma_root": "text_encoders/gemma3",
}
_GEMMA_PLACEHOLDER = "model-random.safetensors"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")

# fmt: off
TRANSFORMER_19B: dict[str, Any] = {
    "dropout": 0.0, "attention_bias": True, "num_vector_embeds": None, "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000, "use_linear_projection": False, "only_cross_attention": False,
    "cross_attention_norm": True, "double_self_attention": False, "upcast_attention": False,
    "standardization_norm": "rms_norm", "norm_elementwise_affine": False, "qk_norm": "rms_norm",
    "positional_embedding_type": "rope", "use_audio_video_cross_attention": True, "share_ff": False,
    "av_cross_ada_norm": True, "use_middle_indices_grid": True,
    "num_attention_heads": 32, "attention_head_dim": 128, "num_layers": 48, "in_channels": 128,
    "out_channels": 128, "cross_attention_dim": 4096, "caption_channels": 3840,
    "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "audio_in_channels": 128,
    "audio_out_channels": 128, "audio_cross_attention_dim": 2048,
    "norm_eps": 1e-6, "positional_embedding_theta": 10000.0, "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20], "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000, "rope_type": "split", "frequencies_precision": "float64",
    "connector_positional_embedding_max_pos": [4096],
}
VIDEO_VAE: dict[str, Any] = {
    "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128, "patch_size": 4,
    "norm_layer": "pixel_norm", "latent_log_var": "uniform", "spatial_padding_mode": "zeros",
    "causal_decoder": False, "timestep_conditioning": False, "decoder_base_channels": 128,
    "encoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
                       ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
                       ["res_x", {"num_layers": 4}], ["compress_all_res", {"multiplier": 2}],
                       ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 1}],
                       ["res_x", {"num_layers": 2}]],
    "decoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space", {"multiplier": 2}],
                       ["res_x", {"num_layers": 6}], ["compress_time", {"multiplier": 2}],
                       ["res_x", {"num_layers": 4}], ["compress_all", {"multiplier": 1}],
                       ["res_x", {"num_layers": 2}], ["compress_all", {"multiplier": 2}],
                       ["res_x", {"num_layers": 2}]],
}
AUDIO_VAE: dict[str, Any] = {
    "model": {"params": {"sampling_rate": 16000, "ddconfig": {
        "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "in_channels": 2, "out_ch": 2,
        "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
        "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"}}},
    "preprocessing": {"stft": {"hop_length": 160, "filter_length": 1024, "causal": True},
                      "mel": {"n_mel_channels": 64}},
}
VOCODER: dict[str, Any] = {"resblock": "1", "stereo": True, "output_sampling_rate": 24000}
SPATIAL_UPSAMPLER: dict[str, Any] = {"in_channels": 128, "mid_channels": 512, "num_blocks_per_stage": 4,
                                     "dims": 3, "spatial_upsample": True, "temporal_upsample": False,
                                     "spatial_scale": 2.0, "rational_resampler": False}
TEMPORAL_UPSAMPLER: dict[str, Any] = {**SPATIAL_UPSAMPLER, "spatial_upsample": False,
                                      "temporal_upsample": True}
FULL_CONFIG: dict[str, Any] = {"transformer": TRANSFORMER_19B, "vae": VIDEO_VAE, "audio_vae": AUDIO_VAE,
                               "vocoder": VOCODER}
# fmt: on

# Parameter counts of the configs above, built on the meta device (tests/integration/test_fullsize_meta.py
# checks them against a fresh meta build; the transformer's 18.88B is the published "19B").
PARAM_COUNTS: dict[str, int] = {
    "transformer": 18_876_174_592,
    "embeddings_processor": 1_431_475_200,
    "video_encoder": 318_936_897,
    "video_decoder": 407_169_072,
    "audio_encoder": 21_333_008,
    "audio_decoder": 31_915_138,
    "vocoder": 55_592_802,
    "spatial_upsampler": 126_250_624,
    "temporal_upsampler": 130_968_192,
    "text_encoder": 12_187_325_040,
}


@dataclass(frozen=True)
class ComponentSize:
    """Parameter and buffer counts of one full-size component, built on the meta device."""

    name: str
    params: int
    buffers: int


def footprint_params(n_transformers: int) -> dict[str, int]:
    """Parameter counts per memory-policy group (memory.ModelFootprint multiplies by the element size)."""
    counts = PARAM_COUNTS
    other = sum(v for k, v in counts.items() if k not in ("transformer", "text_encoder", "audio_encoder"))
    return {
        "transformer": counts["transformer"] * n_transformers,
        "text_encoder": counts["text_encoder"],
        "other": other,
    }


def ensure_random_set(root: Path, tokenizer_source: Path) -> Path:
    """Write the header-only set into `root` (idempotent, a few KB): configs in metadata, no tensors.

    `tokenizer_source` is a Gemma folder whose tokenizer files are copied (the tiny set's). Files are written
    to temporary names and renamed into place, so concurrent workers never see a half-written header.
    """
    root = Path(root)
    write_placeholder(root / RANDOM_LAYOUT["checkpoint"], {"config": json.dumps(FULL_CONFIG)})
    write_placeholder(root / RANDOM_LAYOUT["spatial_upsampler"], {"config": json.dumps(SPATIAL_UPSAMPLER)})
    write_placeholder(root / RANDOM_LAYOUT["temporal_upsampler"], {"config": json.dumps(TEMPORAL_UPSAMPLER)})
    gemma = root / RANDOM_LAYOUT["gemma_root"]
    gemma.mkdir(parents=True, exist_ok=True)
    write_placeholder(gemma / _GEMMA_PLACEHOLDER, {})
    for name in _TOKENIZER_FILES:
        if not (gemma / name).is_file():
            tmp = gemma / f".{name}.{os.getpid()}"
            shutil.copyfile(Path(tokenizer_source) / name, tmp)
            tmp.replace(gemma / name)
    _write_json(gemma / "config.json", gemma_12b_config())
    processor = json.loads((Path(tokenizer_source) / "preprocessor_config.json").read_text())
    processor["size"] = {"height": 896, "width": 896}  # Gemma-3's SigLIP input
    _write_json(gemma / "preprocessor_config.json", processor)
    return root


def gemma_12b_config() -> dict[str, Any]:
    """ltx-core's shipped Gemma-3-12B constant, as a config.json (what compat.gemma_config applies for it)."""
    from ltx_core.text_encoders.gemma.config import Gemma3ConfigData

    config: dict[str, Any] = Gemma3ConfigData().to_dict()
    return config


def is_placeholder(path: str | Path) -> bool:
    """A header-only file written by ensure_random_set (read from its metadata, not its name)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return bool(header.get("__metadata__", {}).get(MARKER_KEY) == RANDOM_RECIPE_VERSION)


def write_placeholder(path: Path, metadata: dict[str, str]) -> None:
    """A header-only safetensors file: `metadata` (e.g. {"config": json}) plus the random marker, no data."""
    header = json.dumps({"__metadata__": {**metadata, MARKER_KEY: RANDOM_RECIPE_VERSION}}).encode()
    header += b" " * (-len(header) % 8)
    _write_bytes(path, struct.pack("<Q", len(header)) + header)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    _write_bytes(path, json.dumps(payload, indent=1, sort_keys=True).encode())


def _write_bytes(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


class RandomStateDictLoader:
    """An ltx-core StateDictLoader: random tensors for placeholder files, the safetensors loader otherwise.

    The keys, shapes and dtypes are those of the official meta model after the builder's module ops, i.e.
    exactly what `load_state_dict` expects; keys the module ops already filled with real values (Gemma's
    rotary frequencies, embedding scale) are left alone, as a real checkpoint leaves them. The sd_ops' value
    operations (the fp8 downcast) are applied as the safetensors loader applies them.
    """

    def __init__(self, configurator: Any, module_ops: tuple[Any, ...], seed: int, dtype: Any) -> None:
        from ltx_core.loader.sft_loader import SafetensorsModelStateDictLoader

        self._configurator = configurator
        self._module_ops = module_ops
        self._seed = seed
        self._dtype = dtype
        self._files = SafetensorsModelStateDictLoader()

    def metadata(self, path: str) -> dict[str, Any]:
        """The file's safetensors metadata: for a placeholder, the official config it carries."""
        meta: dict[str, Any] = self._files.metadata(path)
        return meta

    def load(self, path: str | list[str], sd_ops: Any = None, device: Any = None) -> Any:
        """Seeded random tensors on `device` for each key of the meta model; a real file (a LoRA) is read."""
        import torch
        from ltx_core.loader.primitives import StateDict

        paths = path if isinstance(path, list) else [path]
        if not all(is_placeholder(p) for p in paths):
            return self._files.load(path, sd_ops=sd_ops, device=device)
        device = torch.device(device or "cpu")
        config = self.metadata(paths[0])
        shapes = meta_state_shapes(self._configurator, config, self._module_ops)
        gen = torch.Generator(device=device).manual_seed(
            self._seed * 1_000_003 + zlib.crc32(self._configurator.__name__.encode())
        )
        sd: dict[str, Any] = {}
        size, dtypes = 0, set()
        for key, (shape, dtype, tied_to) in shapes.items():
            if key in sd:  # already made by an sd_ops value operation (Gemma's embed_tokens -> lm_head)
                continue
            if tied_to is not None:  # tied parameters share one tensor, as a real load leaves them
                sd[key] = sd[tied_to]
                continue
            value = random_tensor(key, shape, self._dtype if dtype.is_floating_point else dtype, device, gen)
            pairs = sd_ops.apply_to_key_value(key, value) if sd_ops is not None else [(key, value)]
            for out_key, out_value in pairs:
                # a rename from checkpoint to model key names (the 2.3 vocoder's `vocoder.` strip): `key`
                # already is the model's name, so keep it and take only the operation's value
                target = key if out_key != key and out_key not in shapes else out_key
                if target in sd and target != key:
                    continue
                sd[target] = out_value
                size += out_value.nbytes
                dtypes.add(out_value.dtype)
        return StateDict(sd=sd, device=device, size=size, dtype=dtypes)


def meta_state_shapes(
    configurator: Any, config: dict[str, Any], module_ops: Iterable[Any] = ()
) -> dict[str, Any]:
    """{key: (shape, dtype, tied_to)} of every state-dict entry still on the meta device after the module ops;
    `tied_to` names the first key holding the same tensor (tied weights), else None."""
    import torch

    with torch.device("meta"):
        model = configurator.from_config(config)
    for op in module_ops:
        if op.matcher(model):
            model = op.mutator(model)
    shapes: dict[str, Any] = {}
    first_key: dict[int, str] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        if value.is_meta:
            tied_to = first_key.setdefault(id(value), key)
            shapes[key] = (tuple(value.shape), value.dtype, None if tied_to == key else tied_to)
    return shapes


def random_tensor(key: str, shape: tuple[int, ...], dtype: Any, device: Any, gen: Any) -> Any:
    """Small, finite, seeded: scaled normal weights, unit norm scales, zero biases, identity VAE stats."""
    import torch

    out = torch.empty(shape, dtype=dtype, device=device)
    if not dtype.is_floating_point:
        return out.zero_()
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "std-of-means":
        return out.fill_(1.0)
    if leaf in ("mean-of-means", "bias") or len(shape) == 0:
        return out.zero_()
    if len(shape) == 1:
        is_scale = "norm" in key or leaf in ("weight", "alpha", "beta", "scale")
        return out.fill_(1.0) if is_scale and "gemma" not in key else out.zero_()
    if "scale_shift_table" in key or "learnable_registers" in key:
        return out.normal_(0.0, 0.02, generator=gen)
    fan_in = 1
    for dim in shape[1:]:
        fan_in *= dim
    return out.normal_(0.0, INIT_STD_SCALE / max(fan_in, 1) ** 0.5, generator=gen)


def install_random_loaders(ledger: Any, seed: int, dtype: Any) -> Any:
    """Give every `*_builder` of an official ModelLedger (or one SingleGPUModelBuilder) the random loader."""
    if hasattr(ledger, "model_class_configurator"):
        return _with_loader(ledger, seed, dtype)
    for name, builder in list(vars(ledger).items()):
        if name.endswith("_builder"):
            setattr(ledger, name, _with_loader(builder, seed, dtype))
    return ledger


def _with_loader(builder: Any, seed: int, dtype: Any) -> Any:
    loader = RandomStateDictLoader(builder.model_class_configurator, tuple(builder.module_ops), seed, dtype)
    return replace(builder, model_loader=loader)


def component_sizes(
    full_config: dict[str, Any] | None = None,
    spatial_upsampler: dict[str, Any] | None = None,
    temporal_upsampler: dict[str, Any] | None = None,
) -> list[ComponentSize]:
    """Every full-size component built on the meta device (no memory, seconds): parameter/buffer counts.
    The configs default to the 19B set's (random_weights23 passes the 22B set's)."""
    full_config = FULL_CONFIG if full_config is None else full_config
    spatial_upsampler = SPATIAL_UPSAMPLER if spatial_upsampler is None else spatial_upsampler
    temporal_upsampler = TEMPORAL_UPSAMPLER if temporal_upsampler is None else temporal_upsampler
    from ltx2_batch.backends import compat

    compat.prepare()
    import torch
    from ltx_core.model.audio_vae import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    parts: list[tuple[str, Any, dict[str, Any]]] = [
        ("transformer", LTXModelConfigurator, full_config),
        ("embeddings_processor", EmbeddingsProcessorConfigurator, full_config),
        ("video_encoder", VideoEncoderConfigurator, full_config),
        ("video_decoder", VideoDecoderConfigurator, full_config),
        ("audio_encoder", AudioEncoderConfigurator, full_config),
        ("audio_decoder", AudioDecoderConfigurator, full_config),
        ("vocoder", VocoderConfigurator, full_config),
        ("spatial_upsampler", LatentUpsamplerConfigurator, spatial_upsampler),
        ("temporal_upsampler", LatentUpsamplerConfigurator, temporal_upsampler),
    ]
    sizes = []
    # the embeddings processor is sized by ltx-core's Gemma constant: the shipped 12B one (None) here
    with compat.gemma_config(None):
        for name, configurator, config in parts:
            with torch.device("meta"):
                model = configurator.from_config(config)
            sizes.append(_size(name, model))
        with torch.device("meta"):
            gemma = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(GEMMA3_CONFIG_FOR_LTX.to_dict()))
    sizes.append(_size("text_encoder", gemma))
    return sizes


def _size(name: str, model: Any) -> ComponentSize:
    return ComponentSize(
        name=name,
        params=sum(p.numel() for p in model.parameters()),
        buffers=sum(b.numel() for b in model.buffers()),
    )
