"""Issue 15 bench: encoding one clip through the ffmpeg pipe (what `media/write.py` does) vs PyAV in-process.

Both encode the same random uint8 frames and float32 stereo audio with the same settings (libx264 crf 18,
preset medium, yuv420p BT.709, AAC 192k, faststart). The pipe path is the product's own `Mp4Writer`
(raw rgb24 into one ffmpeg, then a video-copy mux pass that encodes the audio), verification off so that
only encoding is timed; the PyAV path converts each frame with swscale and muxes both streams in one pass.
Prints the best of `--repeats` wall times per size and the ratio pipe / PyAV (> 1: PyAV is faster), and
checks that both files decode to the frame count written.
Usage: python bench/encode_pipe_vs_pyav.py [--repeats 3] [--frames 121]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ltx2_batch.media.probe import probe
from ltx2_batch.media.write import Mp4Writer, expected_audio_samples, fit_audio

SAMPLE_RATE = 24_000
FPS = 24


def encode_pipe(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    with Mp4Writer(path, FPS, crf=18, preset="medium", verify=False) as writer:
        writer.write_frames(frames)
        writer.set_audio(audio, SAMPLE_RATE)


def encode_pyav(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    height, width = frames.shape[1:3]
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=Fraction(FPS), options={"crf": "18", "preset": "medium"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.color_primaries = 1  # BT.709, as the pipe path tags it
        video.codec_context.color_trc = 1
        video.codec_context.colorspace = 1
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        sound.bit_rate = 192_000
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709"
            )
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        target = expected_audio_samples(len(frames), FPS, SAMPLE_RATE)
        fitted = np.ascontiguousarray(fit_audio(audio, target), dtype=np.float32)
        chunk = sound.codec_context.frame_size or 1024
        for start in range(0, fitted.shape[1], chunk):
            samples = fitted[:, start : start + chunk]
            piece = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            piece.sample_rate = SAMPLE_RATE
            out.mux(sound.encode(piece))
        out.mux(sound.encode(None))


def make_frames(content: str, count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`noise`: uniform random pixels (x264's worst case, large files); `smooth`: a drifting colour
    gradient with light grain (closer to rendered video)."""
    if content == "noise":
        return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        base = np.stack([x / width + i / count, y / height, (x + y) / (width + height) - i / count], axis=-1)
        grain = rng.normal(0, 0.01, (height, width, 3))
        frames[i] = (np.abs(np.sin(np.pi * (base + grain))) * 255).astype(np.uint8)
    return frames


def best_of(
    repeats: int,
    fn: Callable[[Path, np.ndarray, np.ndarray], object],
    path: Path,
    frames: np.ndarray,
    audio: np.ndarray,
) -> float:
    times = []
    for _ in range(repeats):
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        fn(path, frames, audio)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--content", choices=("noise", "smooth"), default="noise")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"content: {args.content}")
    print(f"{'size':>12} {'pipe s':>8} {'pyav s':>8} {'pipe/pyav':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((256, 256), (768, 512)):
            frames = make_frames(args.content, args.frames, height, width, rng)
            audio = rng.uniform(-0.5, 0.5, (2, round(args.frames / FPS * SAMPLE_RATE))).astype(np.float32)
            pipe_path, pyav_path = Path(tmp) / "pipe.mp4", Path(tmp) / "pyav.mp4"
            pipe_s = best_of(args.repeats, encode_pipe, pipe_path, frames, audio)
            pyav_s = best_of(args.repeats, encode_pyav, pyav_path, frames, audio)
            for path in (pipe_path, pyav_path):
                assert probe(path).frame_count == args.frames, path
            print(f"{width}x{height}x{args.frames:>4} {pipe_s:>8.2f} {pyav_s:>8.2f} {pipe_s / pyav_s:>10.2f}")


if __name__ == "__main__":
    main()
