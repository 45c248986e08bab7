"""Opening a manifest's conditioning files far enough to know a model could use them: headers, packets,
one frame.

Owns `image_problem` (the header parses, the size is within the pixel limit, the chunk checksums hold:
Pillow's `verify`, which reads the file once without decoding its pixels), `video_problem` (PyAV opens
it, it has a video stream within the pixel limit, and its first frame decodes), `audio_problem` (an audio
stream whose first frame decodes), and the facts the a2vid and retake rules need: `audio_reach` (channels,
where the audio really ends) and `source_facts` (a retake source's rate as a fraction, its frames counted
as packets, its audio's end). A text file named `.png`, a 0-byte image, a decompression bomb, a reference
video that is not one, a truncated source or audio that stops before the clip does is refused here,
during validation, instead of after a model has loaded. Must not decode more than one frame of anything
(packets are read, not decoded, and only as many as a rule needs), nor judge paths (the resolver did) or
raise for a bad file: the problems return the reason in words.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import Image, UnidentifiedImageError


def _too_big(width: int, height: int, max_pixels: int) -> str | None:
    if width * height <= max_pixels:
        return None
    return (
        f"is {width}x{height} ({width * height:,} pixels), over the limit of {max_pixels:,}; scale it down "
        "or raise limits.max_image_pixels"
    )


def image_problem(path: str, max_pixels: int) -> str | None:
    """Why the file at `path` is not a usable conditioning image, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(path) as image:  # reads the header only
                width, height = image.size
                if problem := _too_big(width, height, max_pixels):
                    return problem
                image.verify()
    except Image.DecompressionBombError as exc:
        return f"declares a frame too large to decode ({exc}); scale it down"
    except UnidentifiedImageError:
        return "is not an image Pillow can read (empty, truncated, or another kind of file)"
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports broken chunks as SyntaxError
        return f"is a damaged image: {exc}"
    return None


def video_problem(path: str, max_pixels: int) -> str | None:
    """Why the file at `path` is not a usable reference video, or None (decodes its first frame)."""
    import av  # the video library loads only when a manifest has a reference video

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return "has no video stream"
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if problem := _too_big(width, height, max_pixels):
                return problem
            for _frame in container.decode(stream):
                return None
            return "has a video stream with no decodable frame"
    except (av.FFmpegError, OSError, ValueError) as exc:
        return f"is not a video PyAV can decode: {exc}"


def audio_problem(path: str) -> str | None:
    """Why the file at `path` cannot drive an a2vid job, or None (an audio stream with a decodable frame)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return "has no audio stream"
            for _frame in container.decode(container.streams.audio[0]):
                return None
            return "has an audio stream with no decodable frame"
    except (av.FFmpegError, OSError, ValueError) as exc:
        return f"is not audio PyAV can decode: {exc}"


@dataclass(frozen=True)
class AudioReach:
    """A file's first audio stream as validation needs it: its channel count, whether its header states a
    duration (ltx-pipelines' decoder needs one when no `max_duration` bounds it), and where it really
    ends (s, from its packets), read no further than the caller asked."""

    channels: int
    header_duration: bool
    end_s: float


@functools.lru_cache(maxsize=64)
def audio_reach(path: str, sha256: str, start_s: float, needed_s: float) -> AudioReach:  # noqa: ARG001 - sha256 keys the cache: same path, other bytes
    """Probe `path`'s audio stream from its headers and packets, never decoding a sample: packets are read
    from about `start_s` (a seek) and only until the stream reaches `start_s + needed_s`, so a 10-minute
    file costs the packets the clip needs. Cached by content (`sha256`). Only called on a file
    `audio_problem` accepted."""
    import av

    with av.open(path) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 0
        end = _packet_end(container, stream, start_s, start_s + needed_s)
        return AudioReach(channels, stream.duration is not None, end)


def _packet_end(container: Any, stream: Any, start_s: float, until_s: float) -> float:
    """Where `stream` ends (s) by its packets' times, stopping once it reaches `until_s`."""
    import av

    base = stream.time_base
    if start_s > 1.0:  # a seek lands on a packet at or before start_s: the end is still found exactly
        with contextlib.suppress(av.FFmpegError):
            container.seek(int(start_s / base), stream=stream, backward=True, any_frame=True)
    end = 0.0
    for packet in container.demux(stream):
        if not packet.size or packet.pts is None:
            continue  # the demuxer's closing empty packet, or one without a time
        end = max(end, float((packet.pts + (packet.duration or 0)) * base))
        if end >= until_s:
            break
    return end


@dataclass(frozen=True)
class SourceFacts:
    """A retake source as its container stores it: the frame rate as a fraction (24000/1001), the frames
    its header states (0: none) and the video packets really in the file (counted up to a bound), its
    size, and its audio stream (None: it has none) with where that ends."""

    rate: Fraction
    stated_frames: int
    frames: int
    width: int
    height: int
    audio_end_s: float | None


@functools.lru_cache(maxsize=64)
def source_facts(path: str, sha256: str, max_frames: int) -> SourceFacts:  # noqa: ARG001 - sha256 keys the cache: same path, other bytes
    """Probe a retake source in one demuxing pass (no frame is decoded): its video packets counted, at most
    `max_frames + 1` of them (a longer source is refused whatever its length), and its audio packets' end.
    Cached by content (`sha256`). Only called on a file `video_problem` accepted."""
    import av

    with av.open(path) as container:
        video = container.streams.video[0]
        rate = Fraction(video.average_rate or video.base_rate or video.guessed_rate or 0)
        audio = container.streams.audio[0] if container.streams.audio else None
        frames, audio_end = 0, 0.0
        streams = [video] if audio is None else [video, audio]
        for packet in container.demux(*streams):
            if not packet.size:
                continue
            if packet.stream is video:
                frames += 1
                if frames > max_frames:
                    break
            elif packet.pts is not None:
                audio_end = max(audio_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        return SourceFacts(
            rate,
            video.frames,
            frames,
            video.codec_context.width,
            video.codec_context.height,
            None if audio is None else audio_end,
        )
