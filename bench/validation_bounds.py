"""Bench: validation's worst cases (issue 23, item 4): seconds and peak memory of refusing each one.

Each case writes a manifest (and its input files) into a temporary folder and runs what a run does to
plan it, `open_manifest` then every job of `iter_jobs`, in a fresh child process, which prints its wall
seconds, its peak resident memory (`ru_maxrss`: the interpreter and its imports included, about 60 MiB)
and the outcome (the problem count and the size of the error text); `(YAML)` is the seconds of parsing the
file alone, timed first, which no validation change can shorten (PyYAML's pure-Python loader). The cases:

- `storyboard_triggers`: a 120 KB storyboard whose element trigger (60,000 characters) is mentioned 20,000
  times: expanded, one 1.2-billion-character prompt.
- `grid_times_zip`: a 1,000,000-point grid times a 3-row zip (3,000,000 jobs, over `limits.max_jobs`).
- `one_bad_value_1m`: 1,000 seeds x 1,000 guidance scales, one of them the string "x".
- `one_bad_value_2m`: the same with 2,000 seeds.
- `width_sweep_200k`: `width: [1 .. 200,000]`, nearly every value refused.
- `valid_sweep_100k`: a valid 100,000-job sweep (the planning cost a good manifest pays, for comparison).
- `retake_long_source`: a retake of a 3-minute Matroska source, whose header states no frame count.
- `a2vid_long_audio`: a2vid driven by a 10-minute mono file (validated, then refused: the clip is longer
  than `max_duration`).

`--tree DIR` runs the children against another checkout (e.g. `git archive <commit> | tar -x -C DIR`) for
before/after figures from one script. Each child runs under an address-space cap (`--max-gib`) and a
time limit (`--timeout`); a case over either is reported as such.
Run: `PYTHONPATH=. python bench/validation_bounds.py [--tree DIR] [--only CASE ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import yaml

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    cap = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from ltx2_batch.config import ChainingConfig, PathsConfig
    from ltx2_batch.errors import ManifestError
    from ltx2_batch.manifest.document import parse_yaml, read_manifest_bytes
    from ltx2_batch.manifest.load import open_manifest
    start = time.perf_counter()
    parse_yaml(read_manifest_bytes(sys.argv[1]), sys.argv[1])  # the YAML alone, for comparison
    yaml_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        stream = open_manifest(
            sys.argv[1], chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="bench"
        )
        outcome = f"accepted: {sum(1 for _ in stream.iter_jobs()):,} jobs"
    except ManifestError as exc:
        outcome = f"refused: {len(exc.problems):,} problem(s) listed, {len(str(exc)):,} characters"
    except MemoryError:
        outcome = "MemoryError"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "yaml_s": yaml_s, "peak_mib": peak, "outcome": outcome}))
    """
)


def _write(folder: Path, doc: dict[str, object]) -> Path:
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1 << 30))
    return path


def storyboard_triggers(folder: Path) -> Path:
    shots = [{"prompt": "@M " * 20_000}]
    return _write(
        folder,
        {
            "elements": [{"name": "M", "trigger": "x" * 60_000}],
            "defaults": {"width": 64, "height": 64, "num_frames": 9},
            "scenes": [{"name": "s", "shots": shots}],
        },
    )


def _sweep_doc(sweep: dict[str, object]) -> dict[str, object]:
    job = {"name": "a", "prompt": "a cat", "width": 64, "height": 64, "num_frames": 9, "pipeline": "ti2vid"}
    return {"jobs": [{**job, "sweep": sweep}]}


def grid_times_zip(folder: Path) -> Path:
    grid = {"seed": list(range(1000)), "video_guider_params.cfg_scale": [i / 10 for i in range(1000)]}
    return _write(folder, _sweep_doc({"grid": grid, "zip": {"prompt": ["a", "b", "c"]}}))


def _one_bad(seeds: int) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        scales: list[object] = [i / 10 for i in range(999)] + ["x"]
        grid = {"seed": list(range(seeds)), "video_guider_params.cfg_scale": scales}
        return _write(folder, _sweep_doc({"grid": grid}))

    return write


def width_sweep_200k(folder: Path) -> Path:
    return _write(folder, _sweep_doc({"grid": {"width": list(range(1, 200_001))}}))


def valid_sweep_100k(folder: Path) -> Path:
    grid = {"seed": list(range(1000)), "video_guider_params.cfg_scale": [1, 2, 3, 4, 5]}
    zipped = {"prompt": [f"prompt number {i}" for i in range(20)]}
    return _write(folder, _sweep_doc({"grid": grid, "zip": zipped}))


def _encode(path: Path, frames: int, fps: Fraction, audio_s: float | None, size: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps) if frames else None
        if video is not None:
            video.width = video.height = size
            video.pix_fmt = "yuv420p"
            video.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=48_000, layout="mono") if audio_s else None
        image = np.zeros((size, size, 3), np.uint8)
        for i in range(frames):
            image[:] = i % 256
            assert video is not None
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        if video is not None:
            out.mux(video.encode(None))
        if audio is not None and audio_s:
            block = np.zeros((1, 48_000), np.float32)
            for second in range(int(audio_s)):
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48_000, second * 48_000
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))


def retake_long_source(folder: Path) -> Path:
    _encode(folder / "source.mkv", 180 * 24, Fraction(24), None, 640)
    retake = {"path": "source.mkv", "start": 1.0, "end": 2.0}
    job = {"name": "r", "prompt": "a cat", "pipeline": "retake", "upscale": {"spatial": False}}
    return _write(
        folder, {"jobs": [{**job, "width": 640, "height": 640, "num_frames": 4321, "retake": retake}]}
    )


def a2vid_long_audio(folder: Path) -> Path:
    _encode(folder / "voice.m4a", 0, Fraction(24), 600.0, 64)
    conditioning = {"path": "voice.m4a", "start": 0, "max_duration": 0.01}
    job = {"name": "a", "prompt": "a singer", "pipeline": "a2vid", "width": 64, "height": 64, "num_frames": 9}
    return _write(folder, {"jobs": [{**job, "audio_conditioning": conditioning}]})


CASES: dict[str, Callable[[Path], Path]] = {
    "storyboard_triggers": storyboard_triggers,
    "grid_times_zip": grid_times_zip,
    "one_bad_value_1m": _one_bad(1000),
    "one_bad_value_2m": _one_bad(2000),
    "width_sweep_200k": width_sweep_200k,
    "valid_sweep_100k": valid_sweep_100k,
    "retake_long_source": retake_long_source,
    "a2vid_long_audio": a2vid_long_audio,
}


def run_case(name: str, tree: Path, cap_bytes: int, timeout_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = CASES[name](Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(tree)}
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), str(cap_bytes)],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"seconds": timeout_s, "peak_mib": None, "outcome": f"over {timeout_s:.0f} s: stopped"}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"seconds": None, "peak_mib": None, "outcome": f"died: {done.stderr.strip()[-300:]}"}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--only", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument("--max-gib", type=float, default=6.0, help="address-space cap of each child")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    args = parser.parse_args()
    print(f"tree: {args.tree}")
    print(f"{'case':22s} {'seconds':>8s} {'(YAML)':>7s} {'peak MiB':>9s}  outcome")
    for name in args.only:
        got = run_case(name, args.tree, int(args.max_gib * (1 << 30)), args.timeout)
        seconds = "-" if got["seconds"] is None else f"{got['seconds']:.2f}"
        yaml_s = "-" if got.get("yaml_s") is None else f"{got['yaml_s']:.2f}"
        peak = "-" if got["peak_mib"] is None else f"{got['peak_mib']:.0f}"
        print(f"{name:22s} {seconds:>8s} {yaml_s:>7s} {peak:>9s}  {got['outcome']}", flush=True)


if __name__ == "__main__":
    main()
