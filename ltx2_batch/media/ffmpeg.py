"""ffmpeg command lines (pure builders, composed with ffmpeg-python) and the one place that runs ffmpeg.

Owns: which flags we pass (raw rgb24 piped into one libx264 encoder, which is frame-exact by construction;
a second mux-only pass that stream-copies the video and encodes AAC from raw float32 on stdin), and running
the binary with its stderr captured so that a failure raises `MediaError` carrying ffmpeg's own words.
Must not: decide file names, rename outputs, or decode media (see write.py and probe.py). Nothing here
trims or concatenates with `-ss`/concat: those are not frame-exact (a stream copy after
`-ss` hides frames behind an edit list; the concat filter duplicated a frame).
The binary is the one shipped in the imageio-ffmpeg wheel; there is no ffprobe (probing uses PyAV).
"""

from __future__ import annotations

import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import IO

import ffmpeg  # ffmpeg-python: builds the argument lists (it never runs or probes anything here)

from ltx2_batch.errors import MediaError

STDERR_TAIL_CHARS = 2000
DEFAULT_AUDIO_BITRATE = "192k"
CRF_MAX = 51  # libx264: 0 is lossless, 51 the coarsest
_COMMON = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y")


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (no system ffmpeg is assumed)."""
    import imageio_ffmpeg  # deferred: only the runners need it; builders stay pure

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def rate_fraction(frame_rate: float | Fraction) -> Fraction:
    """An exact rational for a frame rate: 24 -> 24/1, 23.976 -> 2997/125, Fraction(24000, 1001) kept."""
    if isinstance(frame_rate, Fraction):
        rate = frame_rate
    else:
        # str() of a float is its shortest round-trip decimal, so 23.976 stays 23.976 and not 23.97599...
        rate = Fraction(str(float(frame_rate))).limit_denominator(1_000_000)
    if rate <= 0:
        raise MediaError(f"frame rate must be positive, got {frame_rate!r}")
    return rate


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even dimensions: odd sizes are padded by one pixel on the right/bottom."""
    return width + width % 2, height + height % 2


def ffmpeg_encode_command(
    output: str | Path,
    width: int,
    height: int,
    frame_rate: float | Fraction,
    *,
    crf: int = 18,
    preset: str = "medium",
    faststart: bool = True,
    exe: str = "ffmpeg",
) -> list[str]:
    """Raw rgb24 frames on stdin -> H.264 (libx264, yuv420p, BT.709 tagged) in an MP4 at `output`.

    One encoder fed every frame is exact: frames out == frames in, timestamps i/fps. Odd sizes get a
    black pad column/row (the decoded frame's top-left `height x width` is the input).
    """
    if width <= 0 or height <= 0:
        raise MediaError(f"frame size must be positive, got {width}x{height}")
    if not 0 <= crf <= CRF_MAX:
        raise MediaError(f"crf must be in 0..{CRF_MAX}, got {crf}")
    rate = rate_fraction(frame_rate)
    filters = []
    if (width, height) != even_size(width, height):
        filters.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")
    # Convert with the BT.709 matrix and say so in the stream, so players and PyAV agree on colours.
    filters.append("scale=out_color_matrix=bt709:out_range=tv")
    frames = ffmpeg.input(
        "pipe:0", f="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",  # not video_size=(w, h): py3.10+
        framerate=f"{rate.numerator}/{rate.denominator}",
    )  # fmt: skip
    options: dict[str, object] = {
        "vf": ",".join(filters),
        "c:v": "libx264", "preset": preset, "crf": crf, "pix_fmt": "yuv420p",
        "colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709", "color_range": "tv",
        "an": None, "map_metadata": -1,
    }  # fmt: skip
    if faststart:
        options["movflags"] = "+faststart"
    return _compile(ffmpeg.output(frames, str(output), format="mp4", **options), exe)


def ffmpeg_lossless_command(output: str | Path, width: int, height: int, exe: str = "ffmpeg") -> list[str]:
    """Raw rgb24 frames on stdin -> lossless RGB H.264 (libx264rgb, qp 0) in Matroska at `output`: a compact,
    bit-exact store of frames that must be fed to an encoder again later (a chained job's kept frames)."""
    if width <= 0 or height <= 0:
        raise MediaError(f"frame size must be positive, got {width}x{height}")
    return [
        exe, *_COMMON,
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", "24", "-i", "pipe:0",
        "-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast", "-an", "-map_metadata", "-1",
        "-f", "matroska", str(output),
    ]  # fmt: skip


def ffmpeg_mux_command(
    video: str | Path,
    output: str | Path,
    sample_rate: int,
    channels: int,
    *,
    audio_bitrate: str = DEFAULT_AUDIO_BITRATE,
    exe: str = "ffmpeg",
) -> list[str]:
    """Copy the video stream of `video` and add AAC encoded from raw float32 interleaved audio on stdin.

    Mux-only stream copy keeps every video frame and timestamp. The caller has already cut the audio to
    exactly round(frames / fps * sr) samples, so no `-shortest` (which cuts at packet granularity).
    """
    _check_audio_format(sample_rate, channels)
    video_in = ffmpeg.input(str(video))
    audio_in = ffmpeg.input("pipe:0", f="f32le", ar=sample_rate, ac=channels)
    out = ffmpeg.output(
        video_in["v:0"], audio_in["a:0"], str(output), format="mp4",
        **{"c:v": "copy", "c:a": "aac", "b:a": audio_bitrate, "map_metadata": -1, "movflags": "+faststart"},
    )  # fmt: skip
    return _compile(out, exe)


def ffmpeg_audio_command(
    output: str | Path,
    sample_rate: int,
    channels: int,
    *,
    audio_bitrate: str = DEFAULT_AUDIO_BITRATE,
    exe: str = "ffmpeg",
) -> list[str]:
    """Raw float32 interleaved audio on stdin -> AAC in an MP4 (audio only) at `output`: the audio of a video
    whose samples arrive in pieces, encoded while they do; `ffmpeg_copy_mux_command` joins it to the video."""
    _check_audio_format(sample_rate, channels)
    audio_in = ffmpeg.input("pipe:0", f="f32le", ar=sample_rate, ac=channels)
    out = ffmpeg.output(
        audio_in, str(output), format="mp4", **{"c:a": "aac", "b:a": audio_bitrate, "map_metadata": -1}
    )
    return _compile(out, exe)


def ffmpeg_copy_mux_command(
    video: str | Path, audio: str | Path, output: str | Path, exe: str = "ffmpeg"
) -> list[str]:
    """The video stream of `video` and the audio stream of `audio`, both copied (no coding) into one MP4.
    The AAC priming is carried over as the edit list: the presented samples stay exact."""
    out = ffmpeg.output(
        ffmpeg.input(str(video))["v:0"], ffmpeg.input(str(audio))["a:0"], str(output), format="mp4",
        **{"c": "copy", "map_metadata": -1, "movflags": "+faststart"},
    )  # fmt: skip
    return _compile(out, exe)


def _check_audio_format(sample_rate: int, channels: int) -> None:
    if sample_rate <= 0:
        raise MediaError(f"sample rate must be positive, got {sample_rate}")
    if channels not in (1, 2):
        raise MediaError(f"audio must be mono or stereo, got {channels} channels")


def _compile(node: ffmpeg.nodes.OutputStream, exe: str) -> list[str]:
    """The argument list for one output, our global flags (quiet, no stdin, overwrite) first: ffmpeg-python
    appends global args after the output name, where ffmpeg warns about trailing options."""
    exe_arg, *rest = node.compile(cmd=exe)
    return [exe_arg, *_COMMON, *rest]


def _tail(stream: IO[bytes]) -> str:
    stream.seek(0)
    text = stream.read().decode("utf-8", errors="replace").strip()
    return text[-STDERR_TAIL_CHARS:]


def _failure(cmd: list[str], returncode: int | None, stderr_tail: str) -> MediaError:
    shown = " ".join(cmd[:1] + cmd[-1:])
    detail = stderr_tail or "(no stderr)"
    return MediaError(f"ffmpeg failed (exit {returncode}) writing via `{shown} ...`:\n{detail}")


def run_ffmpeg(cmd: list[str], stdin_data: bytes | None = None) -> None:
    """Run one ffmpeg command to completion; raise MediaError with its stderr tail on a non-zero exit.

    On KeyboardInterrupt the child is killed and reaped before the interrupt propagates (subprocess.run).
    """
    with tempfile.TemporaryFile() as err:
        try:
            done = subprocess.run(  # an argument list, no shell
                cmd,
                input=stdin_data if stdin_data is not None else b"",
                stdout=subprocess.DEVNULL,
                stderr=err,
                check=False,
            )
        except OSError as exc:
            raise MediaError(f"cannot start ffmpeg ({cmd[0]}): {exc}") from exc
        if done.returncode != 0:
            raise _failure(cmd, done.returncode, _tail(err))


class FfmpegPipe:
    """One ffmpeg process fed through stdin, for frames that arrive in pieces.

    stderr goes to an anonymous temporary file, not a pipe: a pipe nobody reads fills up and deadlocks the
    writer. The owner must call `finish()` on success or `abort()` otherwise (write.Mp4Writer does so in
    its `__exit__`).
    """

    def __init__(self, cmd: list[str]) -> None:
        self._cmd = cmd
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - owned by this object, closed in finish()/abort()
        try:
            self._proc = subprocess.Popen(  # an argument list, no shell
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err
            )
        except OSError as exc:
            self._err.close()
            raise MediaError(f"cannot start ffmpeg ({cmd[0]}): {exc}") from exc

    def write(self, data: bytes | memoryview) -> None:
        """Send bytes; if ffmpeg has died, wait for it and raise with its stderr."""
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            raise MediaError("ffmpeg input is already closed")
        try:
            stdin.write(data)
        except (BrokenPipeError, ValueError) as exc:
            returncode = self._proc.wait()
            tail = _tail(self._err)
            self._err.close()
            raise _failure(self._cmd, returncode, tail) from exc

    def finish(self) -> None:
        """Close stdin, wait for ffmpeg to flush, raise MediaError if it failed."""
        try:
            if self._proc.stdin is not None and not self._proc.stdin.closed:
                self._proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg already exited; its return code below tells us why
        returncode = self._proc.wait()
        if self._err.closed:
            raise _failure(self._cmd, returncode, "(already reported)")
        tail = _tail(self._err)
        self._err.close()
        if returncode != 0:
            raise _failure(self._cmd, returncode, tail)

    def abort(self) -> None:
        """Kill and reap ffmpeg; safe to call more than once and after finish()."""
        if self._proc.poll() is None:
            self._proc.kill()
        try:
            if self._proc.stdin is not None and not self._proc.stdin.closed:
                self._proc.stdin.close()
        except BrokenPipeError:
            pass
        self._proc.wait()
        if not self._err.closed:
            self._err.close()
