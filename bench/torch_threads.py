"""The local engine's torch thread rule, measured: the same launch with torch's default intra-op threads (one
per core) against the rule (runners/local.py: one core left for encoding, at least one thread).

Each side is the command itself (`python -m ltx2_batch`, engine=local, the tiny model) rendering the same
manifest of small two-stage jobs in a fresh process (a process sets its thread count once); the default side
pins `OMP_NUM_THREADS` to the core count, which the rule leaves alone. Prints the median job time (the
ledger's `total_s`: render, encode, files) and the wall time of each side, and their ratio. A warm-up launch
builds the tiny model set first.

Usage: python bench/torch_threads.py [--jobs 4] [--size 64] [--frames 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from ltx2_batch.runners.local import torch_threads, usable_cores

REPO = Path(__file__).resolve().parent.parent


def _manifest(folder: Path, jobs: int, size: int, frames: int) -> Path:
    seeds = ", ".join(str(i) for i in range(1, jobs + 1))
    path = folder / "threads.yaml"
    path.write_text(
        f"defaults: {{width: {size}, height: {size}, num_frames: {frames}, pipeline: distilled, "
        "upscale: {spatial: true}}\n"
        "jobs:\n  - name: clip\n    prompt: 'A cat walks on a sunny street, soft piano music.'\n"
        f"    sweep: {{grid: {{seed: [{seeds}]}}}}\n"
    )
    return path


def _launch(manifest: Path, out: Path, name: str, threads: str | None) -> tuple[float, float]:
    """Wall seconds of the launch and the median job's total seconds."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    command = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={out}",
               f"output.run_name={name}", "engine=local", "model=tiny", "progress=false",
               "force=true"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = pq.read_table(out / name / "ledger.parquet").to_pandas()
    jobs = rows[(rows.row_kind == "job") & (rows.status == "done")]
    return wall, statistics.median(jobs.total_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9)
    args = parser.parse_args()
    cores = usable_cores()
    rule = torch_threads(cores, {})
    tmp = Path(tempfile.mkdtemp(prefix="bench-threads-"))
    manifest = _manifest(tmp, args.jobs, args.size, args.frames)
    warm = tmp / "warm"
    warm.mkdir()
    _launch(_manifest(warm, 1, 64, 9), tmp, "warm", "1")  # builds the tiny set and warms the file cache
    default_wall, default_job = _launch(manifest, tmp, "default", str(cores))
    rule_wall, rule_job = _launch(manifest, tmp, "rule", None)
    print(f"cores {cores}: torch default {cores} thread(s) against the rule's {rule}")
    print(f"  median job (render + files): default {default_job:.2f} s, rule {rule_job:.2f} s "
          f"-> default/rule {default_job / rule_job:.1f}x")  # fmt: skip
    print(f"  launch wall ({args.jobs} jobs, {args.size}x{args.size}x{args.frames}, two-stage): "
          f"default {default_wall:.1f} s, rule {rule_wall:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
