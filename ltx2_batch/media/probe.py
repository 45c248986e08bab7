"""What is really in a media file, by decoding it with PyAV (there is no ffprobe here).

Owns: `MediaInfo` (frame count by decoding, not from headers; audio samples by decoding, reported both as
presented, i.e. cut at the container's declared end, and as the decoder emitted them, AAC padding included),
`read_frames` for seam checks, and the frame-index test pattern that lets a check read back WHICH frame sits
at each position. Must not write files or run the ffmpeg binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ltx2_batch.errors import MediaError

INDEX_GRID = 4  # a 4x4 grid of cells, one bit each: indices 0..65535
_FRAME_NDIM, _RGB = 3, 3  # one [H, W, 3] frame
_LOW, _HIGH = 16, 235  # video-range black and white survive yuv420p and lossy coding intact


@dataclass(frozen=True)
class MediaInfo:
    """Decoded facts about one file. Sizes are the coded ones (an odd input size shows up padded to even)."""

    path: str
    frame_count: int
    frame_rate: float
    width: int
    height: int
    video_duration_s: float  # frame_count / frame_rate
    video_codec: str
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_samples: int | None = None  # presented: decoded samples before the container's declared end
    audio_samples_decoded: int | None = None  # as decoded (AAC end padding included, priming removed)
    audio_duration_s: float | None = None  # audio_samples / audio_sample_rate

    @property
    def has_audio(self) -> bool:
        """The file has an audio stream."""
        return self.audio_codec is not None


def _open(path: str | Path) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise MediaError(f"no media file at {path}")
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open {path} as media: {exc}") from exc


def _packet_end(packet: av.Packet) -> int | None:
    if packet.pts is None or packet.duration is None:
        return None
    return int(packet.pts + packet.duration)


class VideoCount(str, Enum):
    """How `probe` counts a file's video frames. Audio is always decoded: it is cheap and its presented
    length depends on the container's declared end, which only decoding reconciles with the samples."""

    decode = "decode"  # decode every frame: proves the bitstream decodes, costs a full decode
    packets = "packets"  # count the non-empty packets (one per frame in the H.264 we write): demux only


def probe(path: str | Path, frames: VideoCount = VideoCount.decode) -> MediaInfo:
    """Count the video frames (as `frames` says) and decode and count the audio samples of `path`."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        video.thread_type = "AUTO"
        num_frames, decoded_samples, presented_samples = 0, 0, 0
        audio_end: int | None = None  # in the audio stream's time base
        frames_seen: list[_AudioSpan] = []  # spans only: decoded samples are dropped as we go
        try:
            for packet in container.demux(*(s for s in (video, audio) if s is not None)):
                if packet.stream is audio:
                    end = _packet_end(packet)
                    if end is not None:
                        audio_end = end if audio_end is None else max(audio_end, end)
                    frames_seen.extend(_span(frame) for frame in packet.decode())
                elif frames is VideoCount.packets:
                    num_frames += 1 if packet.size else 0  # the demuxer's final empty packet only flushes
                else:
                    num_frames += len(packet.decode())
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode {path}: {exc}") from exc
        rate = video.average_rate or video.guessed_rate
        if not rate:
            raise MediaError(f"{path}: video stream declares no frame rate")
        info = {
            "path": str(path),
            "frame_count": num_frames,
            "frame_rate": float(rate),
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "video_duration_s": float(num_frames / Fraction(rate)),
            "video_codec": video.codec_context.name,
        }
        if audio is None:
            return MediaInfo(**info)
        sample_rate = audio.codec_context.sample_rate
        for span in frames_seen:
            decoded_samples += span.samples
            presented_samples += _presented(span, audio_end, sample_rate)
        return MediaInfo(
            **info,
            audio_codec=audio.codec_context.name,
            audio_sample_rate=sample_rate,
            audio_channels=audio.codec_context.channels,
            audio_samples=presented_samples,
            audio_samples_decoded=decoded_samples,
            audio_duration_s=presented_samples / sample_rate,
        )


@dataclass(frozen=True)
class _AudioSpan:
    pts: int | None
    time_base: Fraction | None
    samples: int


def _span(frame: av.AudioFrame) -> _AudioSpan:
    return _AudioSpan(frame.pts, frame.time_base, frame.samples)


def _presented(span: _AudioSpan, end: int | None, sample_rate: int) -> int:
    """Samples of a decoded frame that fall before the stream's declared end (what a player plays)."""
    if end is None or span.pts is None or span.time_base is None:
        return span.samples
    start_sample = round(span.pts * span.time_base * sample_rate)
    end_sample = round(end * span.time_base * sample_rate)
    return max(0, min(span.samples, end_sample - start_sample))


def video_packet_count(path: str | Path) -> int:
    """Packets of the video stream, demuxed without decoding (a frame count for intra/no-B-frame files)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def read_frames(path: str | Path, start: int = 0, count: int | None = None) -> np.ndarray:
    """Decoded frames `start` (inclusive) .. `start + count` (exclusive) as uint8 RGB `[F, H, W, 3]`.

    Decodes from the beginning (no seeking: seeking is where frame-exactness is lost). Asking for frames
    past the end raises MediaError instead of returning fewer.
    """
    if start < 0 or (count is not None and count < 0):
        raise MediaError(f"read_frames: start and count must be >= 0, got start={start} count={count}")
    stop = None if count is None else start + count
    out: list[np.ndarray] = []
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        height, width = stream.codec_context.height, stream.codec_context.width
        seen = 0
        for frame in container.decode(stream):
            if stop is not None and seen >= stop:
                break
            if seen >= start:
                out.append(frame.to_ndarray(format="rgb24"))
            seen += 1
    if stop is not None and len(out) < stop - start:
        raise MediaError(f"{path}: asked for frames [{start}, {stop}) but the file has {seen}")
    if not out:
        if count is None and start > 0 and seen <= start:
            raise MediaError(f"{path}: start={start} is past the last frame ({seen} frames)")
        return np.zeros((0, height, width, 3), dtype=np.uint8)
    return np.stack(out)


def read_last_frame(path: str | Path) -> np.ndarray:
    """The last frame of a video (or the one frame of an image) as uint8 RGB `[H, W, 3]`.

    Decodes from the beginning like `read_frames`, but holds one frame at a time: a long full-size clip
    never sits in memory just to give up its last frame.
    """
    last = None
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            last = frame
    if last is None:
        raise MediaError(f"{path} has no decodable frame")
    return np.asarray(last.to_ndarray(format="rgb24"))


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The presented audio of `path` as float32 `[C, S]` and its sample rate (decoder padding cut off)."""
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        sample_rate = stream.codec_context.sample_rate
        end: int | None = None
        frames: list[av.AudioFrame] = []
        try:
            for packet in container.demux(stream):
                packet_end = _packet_end(packet)
                if packet_end is not None:
                    end = packet_end if end is None else max(end, packet_end)
                frames.extend(packet.decode())
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode audio of {path}: {exc}") from exc
        pieces = [_samples(frame)[:, : _presented(_span(frame), end, sample_rate)] for frame in frames]
    channels = stream.codec_context.channels
    if not pieces:
        return np.zeros((channels, 0), dtype=np.float32), sample_rate
    return np.concatenate(pieces, axis=1), sample_rate


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """float32 `[C, S]` from a planar (the AAC decoder's "fltp") or packed audio frame."""
    channels = len(frame.layout.channels)
    data = np.asarray(frame.to_ndarray())
    if frame.format.is_planar:
        return data.reshape(channels, -1).astype(np.float32, copy=False)
    return np.asarray(data.reshape(-1, channels).T, dtype=np.float32)


def frame_index_pattern(index: int, height: int, width: int) -> np.ndarray:
    """A uint8 `[H, W, 3]` frame whose 4x4 black/white cells spell `index` in binary (cell r*4+c = bit).

    Big flat cells survive H.264 and yuv420p; `decode_frame_index` reads the number back, so a test can
    tell which input frame ended up at each output position (duplicates, drops and shifts all show).
    """
    if not 0 <= index < 2 ** (INDEX_GRID * INDEX_GRID):
        raise MediaError(f"frame index {index} does not fit in {INDEX_GRID * INDEX_GRID} bits")
    if height < 4 * INDEX_GRID or width < 4 * INDEX_GRID:
        raise MediaError(f"frame {height}x{width} is too small for the index pattern (>= 16x16)")
    bits = np.array([(index >> k) & 1 for k in range(INDEX_GRID * INDEX_GRID)], dtype=np.uint8)
    cells = np.where(bits.reshape(INDEX_GRID, INDEX_GRID) == 1, _HIGH, _LOW).astype(np.uint8)
    rows = np.arange(height) * INDEX_GRID // height
    cols = np.arange(width) * INDEX_GRID // width
    return np.repeat(cells[rows][:, cols][:, :, None], 3, axis=2)


def decode_frame_index(frame: np.ndarray) -> int:
    """Read back `frame_index_pattern`'s number from the centre of each cell.

    Raises MediaError when a cell is neither clearly dark nor clearly light: a blended, shifted or foreign
    frame is reported, not misread as some other index.
    """
    if frame.ndim != _FRAME_NDIM or frame.shape[2] != _RGB:
        raise MediaError(f"expected one [H, W, 3] frame, got shape {frame.shape}")
    height, width = frame.shape[:2]
    luma = frame.astype(np.float32).mean(axis=2)
    index = 0
    for r in range(INDEX_GRID):
        for c in range(INDEX_GRID):
            # Cell bounds as frame_index_pattern assigns them; sample the middle half to avoid edge ringing.
            top, bottom = -(-r * height // INDEX_GRID), -(-(r + 1) * height // INDEX_GRID)
            left, right = -(-c * width // INDEX_GRID), -(-(c + 1) * width // INDEX_GRID)
            dy, dx = (bottom - top) // 4, (right - left) // 4
            level = float(luma[top + dy : bottom - dy, left + dx : right - dx].mean())
            if _LOW + 48 < level < _HIGH - 48:
                raise MediaError(f"cell ({r}, {c}) has level {level:.0f}: not a frame-index pattern")
            if level >= _HIGH - 48:
                index |= 1 << (r * INDEX_GRID + c)
    return index
