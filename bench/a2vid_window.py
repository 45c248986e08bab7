"""An a2vid job driven by a long file, on the tiny model: the audio window the clip uses (what runs now)
against the whole file from `start` (what ran before: `max_duration` set to the file's length reproduces
it), seconds and the process's peak resident memory after each. The window runs first, so the peak after it
is its own.

Usage: OMP_NUM_THREADS=1 python bench/a2vid_window.py [--minutes 10] [--frames 9]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ltx2_batch.backends.base import RenderRequest
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.jobs import AudioCondition, PipelineKind, RenderJob, RenderMode


def write_tone(path: Path, seconds: float, rate: int = 48_000) -> None:
    """Stereo 16-bit PCM WAV, written in one-minute pieces."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for start in range(0, int(seconds), 60):
            t = np.arange(int(min(60, seconds - start) * rate)) / rate + start
            tone = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]).T.reshape(1, -1), format="s16", layout="stereo"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        write_tone(wav, args.minutes * 60)
        backend = create_backend(ModelConfig(root=str(Path(tmp) / "models")), Path("/"))

        def job(max_duration: float | None) -> RenderJob:
            return RenderJob(
                name="a2vid",
                prompt="A drummer plays.",
                width=64,
                height=64,
                num_frames=args.frames,
                frame_rate=24.0,
                seed=1,
                pipeline=PipelineKind.A2VID,
                mode=RenderMode.VIDEO,
                num_inference_steps=2,
                audio_conditioning=AudioCondition(str(wav), max_duration_s=max_duration),
            )

        backend.render(RenderRequest(job=job(None)))  # models built
        print(
            f"{args.minutes:g}-minute stereo 48 kHz file, {args.frames} frames at 24 fps, tiny model, float32"
        )
        print(f"after warm-up: peak {peak_mb():.0f} MB")
        for name, max_duration in (("window (now)", None), ("whole file (before)", args.minutes * 60)):
            t0 = time.perf_counter()
            result = backend.render(RenderRequest(job=job(max_duration)))
            seconds = time.perf_counter() - t0
            print(
                f"{name:22s} {seconds:8.2f} s  audio read {result.audio.shape[1]:>10,} samples  "
                f"peak {peak_mb():.0f} MB"
            )
        backend.close()


if __name__ == "__main__":
    main()
