"""Writers for rendered output: MP4 (H.264 + AAC), PNG, JPEG thumbnail, all atomic.

Owns: the temporary-name-then-`os.replace` discipline (a failure or Ctrl-C leaves nothing at the final path
and no stray temporary), fitting audio to the video's duration, and checking every MP4 by decoding it
before it is renamed into place (frames out == frames in; audio as long as the video).
Must not: import torch, build ffmpeg flags (ffmpeg.py), or decide output paths (the caller does).
Input: numpy uint8 frames `[F, H, W, 3]`, float32 audio `[C, S]` (mono or stereo).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import secrets
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from ltx2_batch.errors import MediaError
from ltx2_batch.media.ffmpeg import (
    DEFAULT_AUDIO_BITRATE,
    FfmpegPipe,
    ffmpeg_audio_command,
    ffmpeg_copy_mux_command,
    ffmpeg_encode_command,
    ffmpeg_exe,
    ffmpeg_lossless_command,
    ffmpeg_mux_command,
    rate_fraction,
    run_ffmpeg,
)
from ltx2_batch.media.probe import MediaInfo, VideoCount, probe, video_packet_count

PARTIAL_SUFFIX = ".partial"
AAC_FRAME_SAMPLES = 1024
_AUDIO_NDIM = 2  # [channels, samples]
_VIDEO_NDIM, _RGB = 4, 3  # [F, H, W, 3]


def partial_path(path: Path, tag: str = "") -> Path:
    """A hidden, unique temporary name next to `path` (same folder, so `os.replace` is atomic)."""
    return path.with_name(f".{path.name}.{tag}{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def partials_of(path: str | Path) -> list[Path]:
    """Temporaries left next to `path` by a writer that was killed (SIGKILL skips every `finally`).

    Only the owner of `path` (the job whose id names it) may delete these: another worker writing the
    same target would have its in-flight temporary removed.
    """
    final = Path(path)
    if not final.parent.is_dir():
        return []
    return sorted(final.parent.glob(f".{glob.escape(final.name)}.*{PARTIAL_SUFFIX}"))


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on normal exit fsync it and rename it onto `path`, otherwise delete it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    try:
        yield tmp
        if not tmp.is_file():
            raise MediaError(f"writer produced no file for {final}")
        _fsync(tmp)
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)


def expected_audio_samples(num_frames: int, frame_rate: float | Fraction, sample_rate: int) -> int:
    """round(num_frames / fps * sr), computed on exact rationals (no float drift on long videos)."""
    exact = Fraction(num_frames) / rate_fraction(frame_rate) * sample_rate
    return round(exact)


def fit_audio(audio: np.ndarray, target_samples: int) -> np.ndarray:
    """Float32 `[C, target]`: trimmed, or padded at the end with silence. A 1-D array is taken as mono."""
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != _AUDIO_NDIM or arr.shape[0] not in (1, 2):
        raise MediaError(f"audio must be [channels, samples] with 1 or 2 channels, got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise MediaError("audio contains NaN or infinite samples")
    if arr.shape[1] >= target_samples:
        return arr[:, :target_samples]
    pad = np.zeros((arr.shape[0], target_samples - arr.shape[1]), dtype=np.float32)
    return np.concatenate([arr, pad], axis=1)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise MediaError(
            f"frames must be a uint8 numpy array, got {type(frames).__name__} {getattr(frames, 'dtype', '')}"
        )
    if frames.ndim != _VIDEO_NDIM or frames.shape[3] != _RGB:
        raise MediaError(f"frames must be [F, H, W, 3], got shape {frames.shape}")
    return np.ascontiguousarray(frames)


class Mp4Writer:
    """Stream frames into one libx264 encoder in pieces; audio is muxed in a second, video-copy pass.

    Use as a context manager::

        with Mp4Writer(path, frame_rate=24) as writer:
            writer.write_frames(chunk)          # any number of times, [F, H, W, 3] uint8
            writer.set_audio(audio, 48000)      # optional, once
        info = writer.info                      # verified MediaInfo of the file now at `path`

    Audio that arrives in pieces beside the frames (a chained job's chunks) goes to `write_audio` instead:
    it is encoded by a second encoder as it comes, so closing only copies both streams into the file
    (encoding a long clip's AAC at the end costs about a second per 15 s of sound here). Samples beyond
    what the frames written so far can hold are kept back until more frames come or the writer closes,
    where the track is fitted (padded with silence or cut) to the video's duration, as `set_audio` does.

    Only on a clean exit is the file checked (its frame count == frames written, counted as `count` says:
    decoded, or the stream's packets; its audio decoded and cut to the video's duration) and renamed into
    place. An exception inside the block kills ffmpeg, deletes the
    temporaries and propagates.
    """

    def __init__(
        self,
        path: str | Path,
        frame_rate: float | Fraction,
        *,
        crf: int = 18,
        preset: str = "medium",
        audio_bitrate: str = DEFAULT_AUDIO_BITRATE,
        count: VideoCount = VideoCount.decode,
    ) -> None:
        self.path = Path(path)
        self.frame_rate = rate_fraction(frame_rate)
        self._crf, self._preset, self._audio_bitrate, self._count = crf, preset, audio_bitrate, count
        self._video_tmp = partial_path(self.path, "v.")
        self._final_tmp = partial_path(self.path)
        self._pipe: FfmpegPipe | None = None
        self._size: tuple[int, int] | None = None  # (height, width)
        self._audio: tuple[np.ndarray, int] | None = None
        self._audio_tmp = partial_path(self.path, "a.")
        self._audio_pipe: FfmpegPipe | None = None
        self._audio_format: tuple[int, int] | None = None  # (sample rate, channels) of the streamed audio
        self._audio_sent = 0  # samples handed to the audio encoder
        self._audio_held: list[np.ndarray] = []  # [C, n] pieces not sendable yet
        self.frames_written = 0
        self.info: MediaInfo | None = None

    def __enter__(self) -> Mp4Writer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write_frames(self, frames: np.ndarray) -> None:
        """Encode uint8 frames [F, H, W, 3]; the first call sets the size, a change raises MediaError."""
        frames = _check_frames(frames)
        if self._size is None:
            self._size = (frames.shape[1], frames.shape[2])
            height, width = self._size
            pipe = self._pipe = FfmpegPipe(
                ffmpeg_encode_command(
                    self._video_tmp,
                    width,
                    height,
                    self.frame_rate,
                    crf=self._crf,
                    preset=self._preset,
                    faststart=True,  # needed when there is no audio pass; costs one local copy
                    exe=ffmpeg_exe(),
                )
            )
        elif frames.shape[1:3] != self._size or self._pipe is None:
            raise MediaError(f"frame size changed from {self._size} to {frames.shape[1:3]} mid-video")
        else:
            pipe = self._pipe
        pipe.write(frames.data.cast("B"))
        self.frames_written += frames.shape[0]

    def set_audio(self, audio: np.ndarray, sample_rate: int) -> None:
        """Audio for the whole video; fitted to frames/fps when the writer closes."""
        if sample_rate <= 0:
            raise MediaError(f"sample rate must be positive, got {sample_rate}")
        if self._audio_format is not None:
            raise MediaError("audio was streamed with write_audio; set_audio cannot replace it")
        fit_audio(audio, 0)  # validate shape and values now, where the caller can see the mistake
        self._audio = (np.asarray(audio), int(sample_rate))

    def write_audio(self, audio: np.ndarray, sample_rate: int) -> None:
        """The next samples of the video's audio, `[C, n]` (1-D: mono), after the frames they accompany."""
        if sample_rate <= 0:
            raise MediaError(f"sample rate must be positive, got {sample_rate}")
        if self._audio is not None:
            raise MediaError("audio was set whole with set_audio; write_audio cannot add to it")
        piece = fit_audio(audio, np.asarray(audio).shape[-1])  # validated, float32 [C, n]
        if self._audio_format is None:
            self._audio_format = (int(sample_rate), piece.shape[0])
            self._audio_pipe = FfmpegPipe(
                ffmpeg_audio_command(
                    self._audio_tmp, sample_rate, piece.shape[0], audio_bitrate=self._audio_bitrate,
                    exe=ffmpeg_exe(),
                )
            )  # fmt: skip
        elif self._audio_format != (int(sample_rate), piece.shape[0]):
            raise MediaError(
                f"audio format changed from {self._audio_format} to {(sample_rate, piece.shape[0])}"
            )
        self._audio_held.append(piece)
        self._send_audio(expected_audio_samples(self.frames_written, self.frame_rate, sample_rate))

    def _send_audio(self, upto: int) -> None:
        """Send held samples up to `upto` in all (the length the frames written so far call for)."""
        if self._audio_pipe is None or not self._audio_held:
            return
        held = np.concatenate(self._audio_held, axis=1)
        count = max(0, min(held.shape[1], upto - self._audio_sent))
        if count:
            self._audio_pipe.write(np.ascontiguousarray(held[:, :count].T).tobytes())  # interleaved f32le
            self._audio_sent += count
        self._audio_held = [held[:, count:]] if count < held.shape[1] else []

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self._pipe is not None:
                self._pipe.abort()
            if self._audio_pipe is not None:
                self._audio_pipe.abort()
            self._video_tmp.unlink(missing_ok=True)
            self._audio_tmp.unlink(missing_ok=True)
            self._final_tmp.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self._pipe is None or self.frames_written == 0:
            raise MediaError(f"no frames were written for {self.path}")
        self._pipe.finish()
        if self._audio_pipe is not None and self._audio_format is not None:
            sample_rate, channels = self._audio_format
            target = expected_audio_samples(self.frames_written, self.frame_rate, sample_rate)
            self._send_audio(target)
            if self._audio_sent < target:  # the track is shorter than the video: silence to its end
                self._audio_pipe.write(np.zeros((target - self._audio_sent) * channels, np.float32).tobytes())
                self._audio_sent = target
            self._audio_pipe.finish()
            run_ffmpeg(
                ffmpeg_copy_mux_command(self._video_tmp, self._audio_tmp, self._final_tmp, exe=ffmpeg_exe())
            )
        elif self._audio is None:
            self._video_tmp.replace(self._final_tmp)
        else:
            audio, sample_rate = self._audio
            target = expected_audio_samples(self.frames_written, self.frame_rate, sample_rate)
            fitted = fit_audio(audio, target)
            run_ffmpeg(
                ffmpeg_mux_command(
                    self._video_tmp,
                    self._final_tmp,
                    sample_rate,
                    fitted.shape[0],
                    audio_bitrate=self._audio_bitrate,
                    exe=ffmpeg_exe(),
                ),
                stdin_data=np.ascontiguousarray(fitted.T).tobytes(),  # interleaved f32le
            )
        info = self._checked(probe(self._final_tmp, self._count))
        _fsync(self._final_tmp)
        self._final_tmp.replace(self.path)
        self.info = dataclasses.replace(info, path=str(self.path))

    def _checked(self, info: MediaInfo) -> MediaInfo:
        """Count, do not trust: the file must hold exactly what we fed ffmpeg."""
        if info.frame_count != self.frames_written:
            raise MediaError(
                f"{self.path}: wrote {self.frames_written} frames, the file holds {info.frame_count}"
            )
        sample_rate = self._audio_format[0] if self._audio_format else self._audio and self._audio[1]
        if sample_rate:
            target = expected_audio_samples(self.frames_written, self.frame_rate, sample_rate)
            if info.audio_samples is None or abs(info.audio_samples - target) >= AAC_FRAME_SAMPLES:
                raise MediaError(
                    f"{self.path}: audio has {info.audio_samples} samples, expected {target} "
                    f"(+-{AAC_FRAME_SAMPLES})"
                )
        return info


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    frame_rate: float | Fraction,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    *,
    crf: int = 18,
    preset: str = "medium",
    count: VideoCount = VideoCount.decode,
) -> MediaInfo:
    """Write all frames (and audio) at once; a thin shell over Mp4Writer. Returns the verified MediaInfo."""
    if (audio is None) != (sample_rate is None):
        raise MediaError("audio and sample_rate must be given together")
    with Mp4Writer(path, frame_rate, crf=crf, preset=preset, count=count) as writer:
        writer.write_frames(frames)
        if audio is not None and sample_rate is not None:
            writer.set_audio(audio, sample_rate)
    if writer.info is None:  # cannot happen: every clean exit sets it
        raise MediaError(f"{path}: writer finished without verifying the file")
    return writer.info


def write_lossless_frames(path: str | Path, frames: np.ndarray) -> Path:
    """Frames stored bit-exactly and compactly (lossless RGB H.264 in Matroska), atomically; read them back
    with probe.read_frames. Verified: the file decodes to exactly these frames' count."""
    frames = _check_frames(frames)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(target) as tmp:
        pipe = FfmpegPipe(ffmpeg_lossless_command(tmp, frames.shape[2], frames.shape[1], exe=ffmpeg_exe()))
        try:
            pipe.write(frames.data.cast("B"))
            pipe.finish()
        except BaseException:
            pipe.abort()
            raise
        count = video_packet_count(tmp)  # qp 0, no B-frames: one packet per frame, no decode needed
        if count != frames.shape[0]:
            raise MediaError(f"{target}: wrote {frames.shape[0]} frames, file decodes to {count}")
    return target


def _one_frame(frame: np.ndarray) -> np.ndarray:
    if isinstance(frame, np.ndarray) and frame.ndim == _VIDEO_NDIM:
        frame = frame[0]
    return np.asarray(_check_frames(np.asarray(frame)[None])[0])


def write_png(path: str | Path, frame: np.ndarray) -> Path:
    """One uint8 `[H, W, 3]` frame (or the first of `[F, H, W, 3]`) as a lossless PNG, atomically."""
    image = Image.fromarray(_one_frame(frame))
    with atomic_target(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def write_thumbnail(path: str | Path, frame: np.ndarray, width: int = 320, quality: int = 88) -> Path:
    """A JPEG `width` pixels wide (aspect kept) of `frame`, or of the first frame of `[F, H, W, 3]`."""
    if width <= 0:
        raise MediaError(f"thumbnail width must be positive, got {width}")
    image = Image.fromarray(_one_frame(frame))
    height = max(1, round(image.height * width / image.width))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    with atomic_target(path) as tmp:
        image.save(tmp, format="JPEG", quality=quality)
    return Path(path)
