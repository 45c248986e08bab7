"""The seam between the scheduler and a model: a small Protocol and the frozen values that cross it.

Owns: `RenderBackend` (what every backend is: the real LTX-2 adapter, a fake for scheduler tests), the two
optional capabilities the executor looks for with isinstance (`OverlappedDecodeBackend`,
`StepReportingBackend`), and the values that cross: `RenderRequest` in, `RenderResult` out, `LatentHandoff`
between the chunks of a chained job.
Must not: import torch or a model package. Tensors travel as opaque `Any` so that planning, scheduling and
the ledger never import torch. Frames come back as a uint8 numpy array `[F, H, W, 3]`, audio as float32
`[channels, samples]`, latents as whatever the backend hands itself back (torch tensors in Ltx2Backend).
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
    pipelines. Both are `[B, C, T, H, W]` latents (from the previous RenderResult's `stage1_latent` /
    `final_latent`) holding exactly the frames to keep. `audio` is the previous chunk's final audio latents
    over the overlap, `[B, C, T, mel]` (T counted at the backend's `audio_latents_per_second`): the next chunk
    starts its audio from them and keeps them clean in every stage, so sound runs on across the seam.
    """

    stage1: Any
    final: Any | None = None
    audio: Any | None = None
    strength: float = 1.0
    blend: int = 0  # the last `blend` handed-off video latent frames fade out instead of staying clean
    normalize_to: tuple[Any, Any] | None = None  # (mean, std) per channel: the first chunk's, for AdaIN


@dataclass(frozen=True)
class RenderRequest:
    """One call of the model: `job` rendered as one window, whose frame count the model family bounds
    (8k+1 frames, at most 121 on LTX-2 and 481 on LTX-2.3: core.families `window_frames`). A chained job
    arrives as one request per chunk, each a window of the job (chaining/run.py), with `handoff` set from
    the second chunk on."""

    job: RenderJob
    handoff: LatentHandoff | None = None


@dataclass
class RenderResult:
    """What one window rendered. `frames` and `audio` are what gets written; the latents are what the
    chaining stage hands to the next chunk (and stores to resume), in the backend's own form; `timings`
    and `info` go into the ledger and the sidecar as they are.

    Mutable on purpose: the caller adds what it learns after the render (the executor's `total` and
    `decode_overlapped`, the chaining stage's sums), and a chained job's summary has no frames (None)."""

    frames: Any  # numpy uint8 [F, H, W, 3]: the job's num_frames (2 F - 1 after temporal upscaling)
    frame_rate: float  # of `frames` (the job's rate, doubled by temporal upscaling)
    audio: Any | None = None  # numpy float32 [C, S]; None when the job has audio off
    sample_rate: int | None = None  # of `audio` (the family's vocoder rate, or a2vid's input file's)
    stage1_latent: Any | None = None  # [B, C, T, H, W]: stage 1's video latent (half size when two-stage)
    final_latent: Any | None = (
        None  # [B, C, T, H, W]: the last stage's video latent, before any temporal upscale
    )
    audio_latent: Any | None = None  # [B, C, T, mel]: the audio latent that was decoded
    timings: dict[str, float] = field(
        default_factory=dict
    )  # seconds per phase (load, text_encode, ..., total)
    info: dict[str, Any] = field(default_factory=dict)  # how it ran: device, dtype, prompt used, recipe ...


@runtime_checkable
class RenderBackend(Protocol):
    """A warm model. Implementations keep weights resident between calls and render one request at a time.

    The executor's order for each job is `check` (before anything is loaded), `prepare`, then `render`
    once per window; `close` when the worker is done with the model. A job that `check` accepts must not
    fail `render` for the reasons `check` covers."""

    def prepare(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> float:
        """Make `pipeline` (with these user LoRAs) ready; returns seconds spent loading (0.0 when warm)."""
        ...

    def check(self, job: RenderJob, *, one_window: bool = True) -> None:
        """Raise FatalBackendError (or MissingWeightsError, naming the missing file) if this model set cannot
        render `job` (pipeline and LoRA kinds, sizes, files, and with `one_window` its frame count as one
        window), before loading anything."""
        ...

    def render(self, request: RenderRequest) -> RenderResult:
        """Render `request.job` as one window, conditioned on `request.handoff` when given. The same request
        on the same backend gives the same bytes (frames, audio and latents: the job's seed decides every
        random draw). Raises FatalBackendError for a job it cannot render (it calls `check` itself), and
        `prepare`s what the job needs if the caller has not."""
        ...

    @property
    def temporal_scale(self) -> int:
        """Pixel frames per latent frame after the first (8 for the LTX-2 VAE): the video latent grid of the
        results, which the chunk planner aligns overlaps to."""
        ...

    @property
    def audio_latents_per_second(self) -> float:
        """Audio latent frames per second of video time (25 for LTX-2's audio VAE): the time axis of
        `RenderResult.audio_latent`, which the chaining stage slices to hand audio across a seam."""
        ...

    def close(self) -> None:
        """Free every model and device cache."""
        ...


class PendingDecode(Protocol):
    """A denoised job whose decode has not run yet: `decode()` runs it (once) and returns the result."""

    def decode(self) -> RenderResult:
        """Implementers decode once and return what `render` would have returned for the same request."""
        ...


@runtime_checkable
class OverlappedDecodeBackend(RenderBackend, Protocol):
    """A backend that can split `render` into denoise now and decode later, so that job n's decode runs on
    another thread while job n+1 denoises (`output.overlap_decode`). `decode()` must give exactly what
    `render` gives for the same request."""

    def can_overlap_decode(self, job: RenderJob) -> bool:
        """Whether `job` may decode beside the next denoise (memory policy, device; read after prepare)."""
        ...

    def denoise(self, request: RenderRequest) -> PendingDecode:
        """Implementers run everything of `render` up to the decode, and hand the decode back to run later."""
        ...


@runtime_checkable
class StepReportingBackend(RenderBackend, Protocol):
    """A backend that reports its denoising steps: every render (or denoise) inside `reporting_steps` tells
    `listener` how far its stages are, from inside the official loop, without changing what it computes."""

    def reporting_steps(self, listener: StepListener) -> AbstractContextManager[None]:
        """Implementers tell `listener` the steps of every render inside the block, and only inside it."""
        ...
