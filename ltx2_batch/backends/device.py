"""Device policy: where models run and in what precision. Torch is imported lazily (the driver imports this).

Owns: the device choice (cuda > mps > cpu unless `model.device` names one, and a clear error when the named
one is absent in this worker); the dtype (bf16 on CUDA; float32 on the CPU, where bf16 convolutions are about
60x slower; float32 on MPS, where bf16 matmuls fail and the bf16 VAE decodes black frames); whether fp8 may
run (CUDA only); and the device's total and free memory, which the memory policy (memory.py) plans with.
Must not: build or hold models (caches.py), import ltx_core / ltx_pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltx2_batch.config import ModelConfig
from ltx2_batch.errors import ConfigError

_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "float32": "float32",
    "fp16": "float16",
    "float16": "float16",
}


@dataclass(frozen=True)
class DevicePolicy:
    """Where and in what precision models run. Plain strings so it can be logged and compared."""

    device: str  # "cuda" | "mps" | "cpu" (or "cuda:N")
    dtype: str  # torch dtype name for every model, e.g. "bfloat16"
    allow_fp8: bool

    @property
    def kind(self) -> str:
        """The device type without its index ("cuda" for "cuda:1"): what the dtype and memory rules go by."""
        return self.device.split(":")[0]


def choose_device_policy(cfg: ModelConfig) -> DevicePolicy:
    """cuda > mps > cpu unless cfg.device names one; bf16 on CUDA, float32 elsewhere unless cfg.dtype says."""
    import torch

    if cfg.device == "auto":
        mps = getattr(torch.backends, "mps", None)
        device = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
    else:
        device = cfg.device
    kind = device.split(":")[0]
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if not available.get(kind, False):
        raise ConfigError(
            f"model.device={cfg.device!r} is not available in this worker (torch {torch.__version__}, "
            f"CUDA available: {available['cuda']}); use model.device=auto or one of "
            f"{sorted(k for k, ok in available.items() if ok)}"
        )
    if cfg.dtype == "auto":
        dtype = "bfloat16" if kind == "cuda" else "float32"
    elif cfg.dtype in _DTYPES:
        dtype = _DTYPES[cfg.dtype]
    else:
        raise ConfigError(f"model.dtype={cfg.dtype!r}: expected auto, bf16, fp16 or fp32")
    if kind == "mps":
        dtype = "float32"  # bf16 matmuls fail and the bf16 VAE decodes black frames on MPS
    return DevicePolicy(device=device, dtype=dtype, allow_fp8=cfg.allow_fp8 and kind == "cuda")


def device_free_bytes(device: str) -> int | None:
    """Free memory of a CUDA device now, within this process's memory-fraction cap if one is set (what the
    memory policy plans with); None for host memory."""
    import torch

    if device.split(":", 1)[0] != "cuda" or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(torch.device(device))
    # a process capped with torch.cuda.set_per_process_memory_fraction may allocate only its share: plan
    # within the cap (what this process has reserved already counts against it)
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", lambda _d: 1.0)(torch.device(device))
    if fraction < 1.0:
        capped = int(total * fraction) - torch.cuda.memory_reserved(torch.device(device))
        free = min(free, max(capped, 0))
    return int(free)
