"""The decode block: a denoised job (`Denoised`) into a RenderResult, now or later on another thread.

Owns: `Denoised` (everything the decode needs, and nothing of the models but the decoders it reads),
the official video and audio decodes (the job's own generator goes on into the video decode, as in the
official pipelines), a2vid's driving audio written back as it was read (mixed to the encoder's channels),
`AudioOrigin` (where a clip's sound comes from, for the sidecar), and `Deferred`, the PendingDecode that
`Ltx2Backend.denoise` returns.
Must not: touch the transformer or text encoder (a deferred decode runs beside the next job's denoise),
or pick the stream it runs on (the backend does).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from ltx_core.model.audio_vae import decode_audio as vae_decode_audio
from ltx_core.model.video_vae import TilingConfig
from ltx_core.model.video_vae import decode_video as vae_decode_video

from ltx2_batch.backends.base import RenderResult
from ltx2_batch.backends.caches import ModelCache
from ltx2_batch.backends.ltx2.clock import PhaseClock, with_every_phase
from ltx2_batch.backends.ltx2.loops import Sampler
from ltx2_batch.core.jobs import RenderJob


class AudioOrigin(str, enum.Enum):
    """Where a clip's sound comes from (the sidecar's `backend.audio_origin`)."""

    generated = "generated"  # denoised by the model from noise (a retake of a source without sound too)
    input = "input"  # a2vid: the driving file's, over the window the clip uses, written back
    source = "source"  # retake, regenerate_audio false: the source's, kept everywhere
    source_outside_window = "source_outside_window"  # retake: the source's, generated inside [start, end)


@dataclass
class Denoised:
    """A job denoised and not decoded yet. `sigmas` is the trace per stage ("stage1", and "stage2" when
    the recipe refined at full size); `to_decode` is `final_latent`, or its temporal upsampling."""

    job: RenderJob
    prompt: str
    sigmas: dict[str, list[float]]
    stage1_latent: torch.Tensor
    final_latent: torch.Tensor
    to_decode: torch.Tensor
    audio_latent: torch.Tensor
    frame_rate: float
    generator: torch.Generator
    timings: dict[str, float]
    sampler: Sampler
    guided: bool  # CFG/STG in stage 1 (a negative prompt) or none
    source_audio: Any = None  # a2vid: the driving audio, written as it was read (not VAE-decoded)
    audio_origin: AudioOrigin = AudioOrigin.generated
    info: dict[str, Any] = field(default_factory=dict)  # the backend's sidecar record, set before the decode

    @property
    def two_stage(self) -> bool:
        """The recipe refined at full size (a stage-2 trace is present)."""
        return "stage2" in self.sigmas


def decode(state: Denoised, cache: ModelCache, device: torch.device, tiled: bool) -> RenderResult:
    """Video and audio decode of a denoised job (`tiled`: the memory policy's tiled VAE decode). Reads only
    the decoders, resident whenever a decode may overlap the next denoise, and the state's own tensors."""
    job, timings = state.job, state.timings
    clock = PhaseClock(timings, device)
    with clock("decode_video"):
        tiling = TilingConfig.default() if tiled else None
        chunks = vae_decode_video(state.to_decode, cache.get("video_decoder"), tiling, state.generator)
        frames = torch.cat([c.cpu() for c in chunks], dim=0).numpy()
    audio = sample_rate = None
    if state.source_audio is not None:  # a2vid_two_stage.py returns the input audio for fidelity
        audio = state.source_audio.waveform.squeeze(0).float().cpu().numpy()
        sample_rate = int(state.source_audio.sampling_rate)
    elif job.audio:
        with clock("decode_audio"):
            decoded = vae_decode_audio(state.audio_latent, cache.get("audio_decoder"), cache.get("vocoder"))
            audio = decoded.waveform.float().cpu().numpy()
            sample_rate = int(decoded.sampling_rate)
    return RenderResult(
        frames=frames,
        frame_rate=state.frame_rate,
        audio=audio,
        sample_rate=sample_rate,
        stage1_latent=state.stage1_latent.detach().clone(),
        final_latent=state.final_latent.detach().clone(),
        audio_latent=state.audio_latent.detach().clone(),
        timings=with_every_phase(timings),
        info=state.info,
    )


class Deferred:
    """What `denoise` returns: `decode()` once, on any thread, through `run` (the backend's decode on its
    side stream after `ready`); `total` counts denoise + decode, not the wait between them."""

    def __init__(
        self, run: Callable[[Denoised, Any], RenderResult], state: Denoised, ready: Any, denoise_s: float
    ) -> None:
        self._run = run
        self._state: Denoised | None = state
        self._ready = ready
        self._denoise_s = denoise_s

    def decode(self) -> RenderResult:
        """Run the decode; a second call raises, since the state is dropped after the first."""
        state, self._state = self._state, None
        if state is None:
            raise RuntimeError("a pending decode runs once")
        t0 = time.perf_counter()
        result = self._run(state, self._ready)
        result.timings["total"] = self._denoise_s + time.perf_counter() - t0
        return result
