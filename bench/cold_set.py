"""A model set in the official on-disk format with random values, for bench/gpu_frontier.py's cold start.

`write_cold_set(root)` writes LTX-2 19B as Lightricks publishes it (the tiny configs with `dry`):
  checkpoints/ltx-2-19b-distilled-fp8.safetensors  transformer (the block linears ltx-core's fp8_cast policy
      downcasts, stored in float8_e4m3fn; the rest bf16), text connectors, video and audio VAE, vocoder; the
      official key names (model.diffusion_model.*, text_embedding_projection.*, vae.*, audio_vae.*, vocoder.*)
      and the config in the safetensors metadata, as backends/tiny.py lays the tiny checkpoint out
  text_encoders/gemma3/model-0000i-of-0000n.safetensors  Gemma-3-12B in Hugging Face key names (or, with
      text_encoder="generated" or too little disk, the header-only placeholder ltx2_random generates from)
  upscalers/ltx-2-spatial-upscaler-x2-1.0.safetensors
Values are generated component by component on the GPU (random_weights.random_tensor's rules), so at most one
component (or one Gemma shard) is in host memory at a time. `drop_from_page_cache` makes the next read come
from the disk; `cold_backend` is what a fresh worker builds from the set.
Must not: write outside `root`.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoints/ltx-2-19b-distilled-fp8.safetensors"
DRY_CHECKPOINT = "checkpoints/ltx-2-tiny-distilled.safetensors"  # a CPU cannot run fp8_cast: bf16 file
UPSAMPLER = "upscalers/ltx-2-spatial-upscaler-x2-1.0.safetensors"
GEMMA = "text_encoders/gemma3"
SHARD_BYTES = 5 * 10**9
DISK_MARGIN = 4 * 2**30
# ltx_core.quantization.fp8_cast.TRANSFORMER_LINEAR_DOWNCAST_MAP: the keys the fp8 checkpoint stores in fp8
FP8_SUFFIXES = tuple(
    f"{leaf}.{kind}"
    for leaf in ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")
    for kind in ("weight", "bias")
)
_GEMMA_RENAMES = (
    ("model.language_model.", "language_model.model."),
    ("model.vision_tower.", "vision_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
)


def _configs(dry: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(checkpoint config, x2 upsampler config, Gemma config) of the full-size set, or of the tiny one."""
    if dry:
        from ltx2_batch.backends import tiny, tiny_gemma

        return tiny.FULL_CONFIG, tiny._SPATIAL_UP, tiny_gemma.GEMMA_CONFIG
    from ltx2_batch.backends import random_weights as rw

    return rw.FULL_CONFIG, rw.SPATIAL_UPSAMPLER, rw.gemma_12b_config()


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _generate(configurator: Any, config: dict[str, Any], rename: Any, fp8: Any = None) -> dict[str, Any]:
    """Every state-dict entry of `configurator`'s model, random, on the host, under its checkpoint name."""
    import torch

    from ltx2_batch.backends.random_weights import meta_state_shapes, random_tensor

    device = _device()
    gen = torch.Generator(device=device).manual_seed(zlib.crc32(configurator.__name__.encode()))
    out = {}
    for key, (shape, dtype, tied_to) in meta_state_shapes(configurator, config).items():
        if tied_to is not None:
            continue
        value = random_tensor(key, shape, torch.bfloat16 if dtype.is_floating_point else dtype, device, gen)
        if fp8 is not None and fp8(key):
            value = value.to(torch.float8_e4m3fn)
        out[rename(key)] = value.cpu().contiguous()
    return out


def _prefixed(prefix: str, shared: dict[str, str] | None = None) -> Any:
    def rename(key: str) -> str:
        for src, dst in (shared or {}).items():
            if key.startswith(src):
                return dst + key[len(src) :]
        return prefix + key

    return rename


def _save(path: Path, tensors: dict[str, Any], metadata: dict[str, str]) -> int:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return path.stat().st_size


def _write_checkpoint(path: Path, config: dict[str, Any], fp8_blocks: bool) -> int:
    from ltx_core.model.audio_vae import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator

    def is_fp8(key: str) -> bool:
        return fp8_blocks and key.startswith("transformer_blocks.") and key.endswith(FP8_SUFFIXES)

    stats = {"per_channel_statistics.": "vae.per_channel_statistics."}
    audio_stats = {"per_channel_statistics.": "audio_vae.per_channel_statistics."}
    connectors = {
        "feature_extractor.aggregate_embed.": "text_embedding_projection.aggregate_embed.",
        "video_connector.": "model.diffusion_model.video_embeddings_connector.",
        "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
    }
    tensors: dict[str, Any] = {}
    tensors |= _generate(LTXModelConfigurator, config, _prefixed("model.diffusion_model."), is_fp8)
    tensors |= _generate(EmbeddingsProcessorConfigurator, config, _prefixed("", connectors))
    for configurator, prefix, shared in (
        (VideoEncoderConfigurator, "vae.encoder.", stats),
        (VideoDecoderConfigurator, "vae.decoder.", stats),
        (AudioEncoderConfigurator, "audio_vae.encoder.", audio_stats),
        (AudioDecoderConfigurator, "audio_vae.decoder.", audio_stats),
        (VocoderConfigurator, "vocoder.", None),
    ):
        tensors |= _generate(configurator, config, _prefixed(prefix, shared))
    size = _save(path, tensors, {"config": json.dumps(config)})
    tensors.clear()
    return size


def _write_gemma(folder: Path, config: dict[str, Any], tokenizer_source: Path, on_disk: bool) -> int:
    """Tokenizer and config files from `tokenizer_source` (config.json replaced by `config`), and the weights
    in shards of SHARD_BYTES, or the header-only placeholder. Returns the bytes of weights written."""
    import torch

    from ltx2_batch.backends.random_weights import random_tensor, write_placeholder

    folder.mkdir(parents=True, exist_ok=True)
    for item in Path(tokenizer_source).iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copyfile(item, folder / item.name)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    if not on_disk:
        write_placeholder(folder / "model-random.safetensors", {})
        return 0
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
    entries = [(k, v) for k, v in model.state_dict().items() if not k.startswith("lm_head.")]  # tied
    device = _device()
    gen = torch.Generator(device=device).manual_seed(12)
    shards: list[list[tuple[str, Any]]] = [[]]
    filled = 0
    for key, value in entries:
        nbytes = value.numel() * 2
        if filled + nbytes > SHARD_BYTES and shards[-1]:
            shards.append([])
            filled = 0
        shards[-1].append((key, value))
        filled += nbytes
    written = 0
    for index, shard in enumerate(shards, start=1):
        tensors = {}
        for key, value in shard:
            src, dst = next((s, d) for s, d in _GEMMA_RENAMES if key.startswith(s))
            dtype = torch.bfloat16 if value.dtype.is_floating_point else value.dtype
            tensors[dst + key[len(src) :]] = random_tensor(key, tuple(value.shape), dtype, device, gen).cpu()
        name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        written += _save(folder / name, tensors, {"format": "pt"})
    return written


def _gemma_bytes(config: dict[str, Any]) -> int:
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
    return sum(p.numel() for p in model.parameters()) * 2


def write_cold_set(root: Path, dry: bool, text_encoder: str = "disk") -> dict[str, Any]:
    """Write the set under `root` (replacing what is there). Returns what was written and where from."""
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    from ltx2_batch.backends.tiny import GEMMA_ROOT, ensure_tiny_models

    repo = Path(__file__).resolve().parent.parent
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    config, upsampler, gemma = _configs(dry)
    tiny_root = repo / "models" / "tiny"
    ensure_tiny_models(tiny_root)  # its tokenizer serves both sets (ltx2_random does the same)
    sizes = {"checkpoint": _write_checkpoint(root / (DRY_CHECKPOINT if dry else CHECKPOINT), config, not dry)}
    ups = _generate(LatentUpsamplerConfigurator, upsampler, lambda k: k)
    sizes["spatial_upsampler"] = _save(root / UPSAMPLER, ups, {"config": json.dumps(upsampler)})
    need = _gemma_bytes(gemma) + DISK_MARGIN
    free = shutil.disk_usage(root).free
    on_disk = text_encoder == "disk" and free >= need
    sizes["text_encoder"] = _write_gemma(root / GEMMA, gemma, tiny_root / GEMMA_ROOT, on_disk)
    if not dry:  # Gemma-3's SigLIP input size (the tiny set's processor is for 28x28)
        processor = json.loads((root / GEMMA / "preprocessor_config.json").read_text())
        processor["size"] = {"height": 896, "width": 896}
        (root / GEMMA / "preprocessor_config.json").write_text(json.dumps(processor, indent=1))
    total = sum(sizes.values())
    return {
        "set": "tiny" if dry else "ltx2 19B, fp8 transformer checkpoint",
        "bytes_by_file_group": sizes,
        "bytes_on_disk": total,
        "bytes_read_by_load": total,
        "text_encoder": "disk"
        if on_disk
        else f"generated (asked {text_encoder}; free {free / 2**30:.1f} GiB)",
    }


def filesystem_of(path: Path) -> dict[str, Any]:
    """The mount holding `path` (type, free GiB): a RAM-backed /tmp would make "from disk" a copy from RAM."""
    real = str(Path(path).resolve())
    best = ("", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, kind, *_rest = line.split()
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best[0]):
                best = (mount, kind)
    except OSError:
        pass
    return {"mount": best[0], "type": best[1], "free_gib": round(shutil.disk_usage(path).free / 2**30, 1)}


def drop_from_page_cache(root: Path) -> dict[str, Any]:
    """Ask the kernel to forget the set's pages (each file fsynced, then POSIX_FADV_DONTNEED); also try the
    global drop_caches (root only). Says which worked: under some sandboxes neither does."""
    advised = 0
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                advised += 1
            finally:
                os.close(fd)
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        dropped = "ok"
    except OSError as exc:
        dropped = f"not allowed: {exc.strerror}"
    return {"fadvise_dontneed_files": advised, "drop_caches": dropped}


def cold_backend(root: Path, dry: bool) -> Any:
    """The backend a fresh worker builds from the set: the product's own path (create_backend) when every
    file is real; with a placeholder Gemma, the same files read through ltx2_random's loader, which reads real
    files from disk with ltx-core's safetensors loader and generates the placeholder's tensors."""
    import dataclasses

    from ltx2_batch.backends.device import choose_device_policy, device_free_bytes
    from ltx2_batch.backends.factory import adapter, create_backend
    from ltx2_batch.backends.models import resolve_model_files
    from ltx2_batch.backends.random_weights import is_placeholder
    from ltx2_batch.backends.weights import RandomWeights
    from ltx2_batch.config import ModelConfig, ModelSource, Quantization

    repo = Path(__file__).resolve().parent.parent
    cfg = ModelConfig(
        name="cold",
        source=ModelSource.checkpoint,
        root=str(root),
        checkpoints=[DRY_CHECKPOINT if dry else CHECKPOINT],
        gemma_root=GEMMA,
        spatial_upsampler=UPSAMPLER,
        quantization=Quantization.none if dry else Quantization.fp8_cast,
    )
    if not is_placeholder(root / GEMMA / "model-random.safetensors"):
        return create_backend(cfg, repo)
    policy = choose_device_policy(cfg)
    files = resolve_model_files(cfg, repo, require=("checkpoint", "gemma_root"), allow_fp8=policy.allow_fp8)
    weights = RandomWeights(dataclasses.replace(cfg, source=ModelSource.random), repo)
    return adapter()(
        files=files,
        weights=weights,
        policy=policy,
        force_fp8=not dry,
        free_bytes=device_free_bytes(policy.device),
    )
