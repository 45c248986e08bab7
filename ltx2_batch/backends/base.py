"""The seam between the scheduler and a model: a small Protocol and the frozen values that cross it.

Torch-free on purpose: tensors travel as opaque `Any` so that planning, scheduling and the ledger never
import torch. Frames come back as a uint8 numpy array `[F, H, W, 3]`, audio as float32 `[channels, samples]`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob
from ltx2_batch.core.step_events import StepListener


@dataclass(frozen=True)
class LatentHandoff:
    """The tail of the previous chunk's latents, kept clean at the start of the next chunk.

    `stage1` conditions the (half-size) first stage; `final` conditions the refinement stage of two-stage
    pipelines. Both are torch tensors `[B, C, T, H, W]` holding exactly the frames to keep. `audio` is the
    previous chunk's final audio latents over the overlap, `[B, C, T, mel]`: the next chunk starts its audio
    from them and keeps them clean in every stage, so sound runs on across the seam.
    """

    stage1: Any
    final: Any | None = None
    audio: Any | None = None
    strength: float = 1.0
    blend: int = 0  # the last `blend` handed-off video latent frames fade out instead of staying clean
    normalize_to: tuple[Any, Any] | None = None  # (mean, std) per channel: the first chunk's, for AdaIN


@dataclass(frozen=True)
class RenderRequest:
    """One pipeline call: at most one chunk window (<= 121 frames)."""

    job: RenderJob
    handoff: LatentHandoff | None = None


@dataclass
class RenderResult:
    frames: Any  # numpy uint8 [F, H, W, 3]
    frame_rate: float
    audio: Any | None = None  # numpy float32 [C, S]
    sample_rate: int | None = None
    stage1_latent: Any | None = None  # torch [B, C, T, H, W]
    final_latent: Any | None = None  # torch [B, C, T, H, W]
    audio_latent: Any | None = None  # torch [B, C, T, mel] (what the audio decoder decoded)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    info: dict[str, Any] = field(default_factory=dict)  # device, dtype, memory policy, prompt used...


@runtime_checkable
class RenderBackend(Protocol):
    """A warm model. Implementations keep weights resident between calls."""

    def prepare(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> float:
        """Make `pipeline` (with these user LoRAs) ready; returns seconds spent loading (0.0 when warm)."""
        ...

    def check(self, job: RenderJob, *, one_window: bool = True) -> None:
        """Raise if this model set cannot render `job` (sizes, kinds, files), before loading anything."""
        ...

    def render(self, request: RenderRequest) -> RenderResult: ...

    @property
    def temporal_scale(self) -> int:
        """Pixel frames per latent frame after the first (8 for the LTX-2 VAE)."""
        ...

    @property
    def audio_latents_per_second(self) -> float:
        """Audio latent frames per second of sound (what a chained job's audio handoff is measured in)."""
        ...

    def close(self) -> None:
        """Free every model and device cache."""
        ...


class PendingDecode(Protocol):
    """A denoised job whose decode has not run yet: `decode()` runs it (once) and returns the result."""

    def decode(self) -> RenderResult: ...


@runtime_checkable
class OverlappedDecodeBackend(RenderBackend, Protocol):
    """A backend that can split `render` into denoise now and decode later, so that job n's decode runs on
    another thread while job n+1 denoises (`output.overlap_decode`). `decode()` must give exactly what
    `render` gives for the same request."""

    def can_overlap_decode(self, job: RenderJob) -> bool:
        """Whether `job` may decode beside the next denoise (memory policy, device; read after prepare)."""
        ...

    def denoise(self, request: RenderRequest) -> PendingDecode: ...


@runtime_checkable
class StepReportingBackend(RenderBackend, Protocol):
    """A backend that reports its denoising steps: every render (or denoise) inside `reporting_steps` tells
    `listener` how far its stages are, from inside the official loop, without changing what it computes."""

    def reporting_steps(self, listener: StepListener) -> AbstractContextManager[None]: ...
