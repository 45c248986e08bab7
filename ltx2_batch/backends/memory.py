"""The memory policy: which models stay resident on the device, chosen from its free memory. Pure.

Owns: `ModelFootprint` (bytes of each model group plus the activation and decode peaks of the largest job),
`MemoryPlan` (the chosen policy and what it implies) and `choose_memory_policy`, a pure function of free
memory and footprint, so every choice can be unit-tested with made-up figures and no device.
The ladder, cheapest first (each step keeps what the previous one did):
  resident              everything stays on the device across jobs
  offload_text_encoder  the text encoder goes to the CPU after encoding (a prompt-cache hit never fetches it)
  tiled_decode          ... and the VAE decode runs in tiles (official TilingConfig.default())
  fp8_transformer       ... and the transformer is loaded in fp8 (official fp8_cast policy; CUDA only)
  offload_all           nothing fits: every big module is parked on the CPU while idle (slow, last resort)
Separately, `decode_overlap` says whether job n's VAE decode may run while job n+1 denoises
(`output.overlap_decode`): only when nothing is ever moved between devices (resident) and the two peaks fit
side by side. (The caching allocator keeps blocks the decode's side stream freed for that stream; the
measured peaks in the benchmark include that effect: +1 GiB on the H200.)
Must not: import torch or ltx packages, read device state (the caller passes free memory in).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

GIB = 1024**3
# Peak bytes per output pixel-frame of the official untiled VAE decode (bf16), and a flat peak for the tiled
# one. Measured on an H200 (bench/results/gpu_fullsize_h200_run2.json): ~113 B at 768x512x121 and at
# 1536x1024x121 (peak minus resident weights); 120 keeps a margin. The bench records the measured peak.
DECODE_BYTES_PER_PIXEL_FRAME = 120
TILED_DECODE_BYTES = 4 * GIB
# Transformer peak beyond the weights at the reference job, bf16 (an estimate; bench/gpu_fullsize.py measures
# it: two-stage 1536x1024x121 has 24k video tokens in stage 2)
ACTIVATION_BYTES = 8 * GIB
REFERENCE_JOB = (1536, 1024, 121)  # width, height, frames: the largest one-window render the product promises
HEADROOM = 0.92  # fraction of free memory we plan to use (allocator fragmentation, CUDA context growth)


class MemoryPolicy(str, Enum):
    """The rungs of the memory ladder (module docstring), cheapest first."""

    resident = "resident"
    offload_text_encoder = "offload_text_encoder"
    tiled_decode = "tiled_decode"
    fp8_transformer = "fp8_transformer"
    offload_all = "offload_all"


@dataclass(frozen=True)
class ModelFootprint:
    """Bytes on the device. `transformer` counts every transformer held at once (stage 1 and 2 may differ)."""

    transformer: int
    text_encoder: int
    other: int  # connectors, video/audio VAE, vocoder, upsamplers
    activations: int  # transformer peak at the reference job, beyond the weights
    decode: int  # untiled VAE decode peak at the reference job
    transformer_fp8: int | None = None  # None: no fp8 path on this device


@dataclass(frozen=True)
class MemoryPlan:
    """The rung chosen for one device and model set, with the figures and the reason it was chosen."""

    policy: MemoryPolicy
    free_bytes: int | None  # None: host memory (CPU/MPS), no policy needed
    planned_peak_bytes: int
    fits: bool
    reason: str
    decode_overlap: bool = False  # job n's decode may run beside job n+1's denoise (both peaks fit at once)

    @property
    def offload_text_encoder(self) -> bool:
        """The text encoder goes to the CPU after encoding (every rung between resident and offload_all)."""
        return self.policy is not MemoryPolicy.resident and self.policy is not MemoryPolicy.offload_all

    @property
    def tile_decode(self) -> bool:
        """The VAE decodes in tiles (tiled_decode and every rung above it)."""
        tiled = (MemoryPolicy.tiled_decode, MemoryPolicy.fp8_transformer, MemoryPolicy.offload_all)
        return self.policy in tiled

    @property
    def fp8_transformer(self) -> bool:
        """The transformer is to be loaded in fp8 to fit."""
        return self.policy is MemoryPolicy.fp8_transformer

    @property
    def offload_all(self) -> bool:
        """Every big module is parked on the CPU while idle."""
        return self.policy is MemoryPolicy.offload_all

    def as_info(self) -> dict[str, object]:
        """What goes into RenderResult.info (so into the sidecar and the ledger)."""
        return {
            "memory_policy": self.policy.value,
            "memory_free_gib": None if self.free_bytes is None else round(self.free_bytes / GIB, 2),
            "memory_planned_peak_gib": (
                None if self.free_bytes is None else round(self.planned_peak_bytes / GIB, 2)
            ),
            "memory_reason": self.reason,
            "memory_decode_overlap": self.decode_overlap,
        }


def decode_peak_bytes(width: int, height: int, frames: int) -> int:
    """The untiled VAE decode's peak for one output size, from the bytes per pixel-frame measured in bf16."""
    return DECODE_BYTES_PER_PIXEL_FRAME * width * height * frames


def choose_memory_policy(free_bytes: int | None, footprint: ModelFootprint) -> MemoryPlan:
    """The cheapest rung of the ladder whose planned peak fits in HEADROOM x free memory.

    Peak of a rung = resident weights + the larger of the transformer activations and the decode peak (they
    never overlap: decode runs after denoising). An offloaded text encoder still needs its own weights on the
    device while it encodes, so a rung that parks it must also fit "text encoder + other" alone.
    """
    fp = footprint
    if free_bytes is None:
        peak = fp.transformer + fp.text_encoder + fp.other + max(fp.activations, fp.decode)
        return MemoryPlan(
            MemoryPolicy.resident, None, peak, True, "host memory: everything stays resident", True
        )
    budget = int(free_bytes * HEADROOM)
    encode_peak = fp.text_encoder + fp.other
    fp8 = fp.transformer_fp8
    rungs: list[tuple[MemoryPolicy, int, str]] = [
        (
            MemoryPolicy.resident,
            fp.transformer + fp.text_encoder + fp.other + max(fp.activations, fp.decode),
            "all weights and the largest job fit",
        ),
        (
            MemoryPolicy.offload_text_encoder,
            max(fp.transformer + fp.other + max(fp.activations, fp.decode), encode_peak),
            "the text encoder does not fit next to the transformer: parked on the CPU after encoding",
        ),
        (
            MemoryPolicy.tiled_decode,
            max(fp.transformer + fp.other + max(fp.activations, TILED_DECODE_BYTES), encode_peak),
            "the untiled decode does not fit: text encoder parked, VAE decoded in tiles",
        ),
    ]
    if fp8 is not None:
        rungs.append(
            (
                MemoryPolicy.fp8_transformer,
                max(fp8 + fp.other + max(fp.activations, TILED_DECODE_BYTES), encode_peak),
                "the bf16 transformer does not fit: fp8 transformer, text encoder parked, tiled decode",
            )
        )
    # an overlapped decode runs while the next job denoises: both peaks at once, every weight resident
    side_by_side = fp.transformer + fp.text_encoder + fp.other + fp.activations + fp.decode
    for policy, peak, reason in rungs:
        if peak <= budget:
            overlap = policy is MemoryPolicy.resident and side_by_side <= budget
            return MemoryPlan(policy, free_bytes, peak, True, reason, overlap)
    smallest = min(fp.transformer, fp8 or fp.transformer)
    peak = max(smallest, fp.text_encoder) + fp.other + max(fp.activations, TILED_DECODE_BYTES)
    return MemoryPlan(
        MemoryPolicy.offload_all,
        free_bytes,
        peak,
        peak <= budget,
        "no rung fits: every big module parked on the CPU while idle (slow)",
    )
