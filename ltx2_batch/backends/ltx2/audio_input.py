"""The input-audio block: a file's audio read over the window a recipe uses and no further, mixed to the
channels the model's audio encoder takes.

Owns: `read_audio` (ltx-pipelines' `decode_audio_from_file` over `[start, start + duration)`, which seeks to
the start and stops decoding at the end: a 9-frame clip driven by a 10-minute file decodes under a second
of it), the mix to the encoder's `in_channels` (2 in both families: media/channels.py's weights, from the
layout the file's audio stream declares; mono is copied to both sides, more than two channels are folded
to stereo; audio already at the encoder's count is left bit for bit as decoded), and `stated_end_s` (where
the stream's header says the audio ends, for a recipe that reads a whole track when it is short).
Must not: choose the window (a2vid.py and retake.py do), resample (the encoder's own processor does), or
write anything.
"""

from __future__ import annotations

from typing import Any

import av
import torch
from ltx_core.types import Audio
from ltx_pipelines.utils.media_io import decode_audio_from_file

from ltx2_batch.media.channels import mix_weights


def layout_names(path: str, count: int) -> tuple[str, ...]:
    """The channel names of the file's first audio stream (ffmpeg's: FL, FR, FC, LFE, ...), or `count`
    names that say nothing when its layout does not describe `count` channels."""
    with av.open(path) as container:
        stream = container.streams.audio[0]
        names = tuple(channel.name for channel in stream.layout.channels)
    return names if len(names) == count else ("",) * count


def stated_end_s(path: str) -> float | None:
    """Where the file's first audio stream ends by its header (None: no audio, or no stated duration)."""
    with av.open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if stream.duration is None or stream.time_base is None:
            return None
        return float(stream.duration * stream.time_base)


def mixed(audio: Audio, path: str, channels: int) -> Audio:
    """`audio` (`[1, C, S]`, as decode_audio_from_file returns it) with `channels` channels: unchanged when
    it has them, else mixed by media/channels.py's weights for the file's layout."""
    waveform = audio.waveform
    count = int(waveform.shape[-2])
    if count == channels:
        return audio
    weights = torch.tensor(
        mix_weights(layout_names(path, count), channels), dtype=waveform.dtype, device=waveform.device
    )
    return Audio(waveform=torch.matmul(weights, waveform), sampling_rate=audio.sampling_rate)


def read_audio(
    path: str, device: torch.device, start_s: float, duration_s: float | None, encoder: Any
) -> Audio | None:
    """The file's audio over `[start_s, start_s + duration_s)` (None: to the end the header states), mixed
    to the channels `encoder` (the audio VAE encoder) takes; None when the file has no audio stream."""
    decoded = decode_audio_from_file(path, device, start_s, duration_s)
    if decoded is None:
        return None
    return mixed(decoded, path, int(encoder.in_channels))
