"""Issue 25 bench: what a warm pool buys, measured in one run on one machine (the tiny model, CPU actors).

Every launch is the command itself (`python -m ltx2_batch`, a process of its own, engine=ray) joined to a
local Ray that the tool starts for pools (`ray start`, its own process group; `pool down` stops it at the
end). "First render" is the first job's `start` line, i.e. the job sent to a worker, counted from the
launch's process start. Prints:
  1. the same 8-job manifest, cold (a new pool: actors start and build the model) against warm (the same pool
     again): launch to first render, and wall time;
  2. 2 warm actors against 1: wall time and clips/h of that manifest;
  3. a 1,000,000-line prompt file launched on the warm pool: launch to first render (then Ctrl-C: its render
     is cancelled at a denoising step and the pool stays warm);
  4. batch boundaries: a 24-line prompt file streamed 6 jobs at a time on the warm 2-actor pool; from the
     ledger's timestamps, each actor's gaps between one job's end and its next job's start (all, and those
     that straddle a batch boundary).
Usage: python bench/warm_pool.py [--jobs 8] [--size 64] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ltx2_batch.backends.tiny import TINY_DIR_NAME, ensure_tiny_models
from ltx2_batch.config import EngineConfig
from ltx2_batch.core.tool_paths import models_home
from ltx2_batch.runners.local_ray import ensure_local_ray, read_record, stop_local_ray

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from plan_million import write_prompts  # noqa: E402 - a sibling bench script, found once REPO/bench is on the path

MANIFEST = (
    "defaults: {{width: {size}, height: {size}, num_frames: 9, pipeline: distilled,"
    " upscale: {{spatial: false}}}}\n"
    "jobs:\n  - name: clip\n    prompt: 'A cat walks on a sunny street, soft piano music.'\n"
    "    sweep: {{grid: {{seed: [{seeds}]}}}}\n"
)
PROMPTS = (
    "jobs:\n  - {{name: p, prompts: {{path: {path}}}, width: {size}, height: {size}, num_frames: 9, seed: 1,"
    " pipeline: distilled, upscale: {{spatial: false}}}}\n"
)


class Bench:
    def __init__(self, tmp: Path, state: Path) -> None:
        self.tmp, self.state = tmp, state
        self.env = {**os.environ, "LTX2_BATCH_STATE": str(state), "RAY_AUTH_MODE": "disabled"}
        self.env.pop("RAY_ADDRESS", None)
        self.env["PYTHONUNBUFFERED"] = "1"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ltx2_batch", *args]

    def launch(self, manifest: Path, pool: str, run: str, workers: int, *extra: str) -> tuple[float, float]:
        """Seconds from process start to the first `start` line, and to the end."""
        args = [f"manifest={manifest}", f"output.root={self.tmp / 'out'}", f"output.run_name={run}",
                "model=tiny", "engine=ray", f"engine.pool={pool}", f"engine.num_workers={workers}",
                "engine.gpus_per_worker=0", "force=true", *extra]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(self.command(*args), cwd=REPO, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        assert proc.stdout is not None
        first = None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if first is None and " start " in f" {line}":
                first = time.perf_counter() - started
        if proc.wait() != 0:
            raise SystemExit(f"launch {run} failed ({proc.returncode}):\n{''.join(lines[-30:])}")
        return first or float("nan"), time.perf_counter() - started

    def first_render_then_interrupt(self, manifest: Path, pool: str, run: str) -> tuple[float, int]:
        args = [f"manifest={manifest}", f"output.root={self.tmp / 'out'}", f"output.run_name={run}",
                "model=tiny", "engine=ray", f"engine.pool={pool}", "engine.gpus_per_worker=0",
                "engine.num_workers=2"]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(self.command(*args), cwd=REPO, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        assert proc.stdout is not None
        first = float("nan")
        for line in proc.stdout:
            if " start " in f" {line}":
                first = time.perf_counter() - started
                proc.send_signal(signal.SIGINT)
                break
        proc.communicate(timeout=300)
        return first, proc.returncode

    def gaps(self, run: str, batch: int) -> tuple[list[float], list[float]]:
        """Each actor's idle gaps between consecutive jobs (all, and those across a batch boundary)."""
        rows = pq.read_table(self.tmp / "out" / run / "ledger.parquet").to_pandas()
        done = rows[(rows.row_kind == "job") & (rows.status == "done")].copy()
        done["line"] = done.prompt.str.extract(r"shot number (\d+)")[0].astype(int)  # plan_million's captions
        every, boundary = [], []
        for _, jobs in done.sort_values("started_at").groupby("worker"):
            ordered = list(jobs.itertuples())
            for before, after in itertools.pairwise(ordered):
                gap = (after.started_at - before.finished_at).total_seconds()
                every.append(gap)
                if before.line // batch != after.line // batch:
                    boundary.append(gap)
        return every, boundary

    def span(self, run: str) -> float:
        """Seconds from the first job's start to the last job's end (the launch's fixed costs left out)."""
        rows = pq.read_table(self.tmp / "out" / run / "ledger.parquet").to_pandas()
        done = rows[(rows.row_kind == "job") & (rows.status == "done")]
        return float((done.finished_at.max() - done.started_at.min()).total_seconds())

    def down(self, pool: str) -> str:
        done = subprocess.run(self.command("pool", "down", f"engine.pool={pool}"), cwd=REPO, env=self.env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        return done.stdout.strip()


def _manifest(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    state = tmp / "state"
    bench = Bench(tmp, state)
    ensure_tiny_models(models_home() / TINY_DIR_NAME)  # the tiny files exist before anything is timed
    local, _ = ensure_local_ray(EngineConfig(num_cpus=4), state)  # logical CPUs: both pools' actors fit
    print(f"local Ray for pools at {local.address} (process group {local.pgid})")
    seeds = ", ".join(str(i) for i in range(1, args.jobs + 1))
    eight = _manifest(tmp / "m", "eight.yaml", MANIFEST.format(size=args.size, seeds=seeds))
    try:
        cold = bench.launch(eight, "two", "cold", 2)
        warm = bench.launch(eight, "two", "warm", 2)
        print(f"1. {args.jobs} jobs {args.size}x{args.size}x9, 2 actors, launch -> first render / wall:")
        print(f"   cold pool {cold[0]:.1f} s / {cold[1]:.1f} s; warm pool {warm[0]:.1f} s / {warm[1]:.1f} s; "
              f"first render {cold[0] / warm[0]:.1f}x sooner, wall {cold[1] / warm[1]:.2f}x")  # fmt: skip
        bench.launch(eight, "one", "cold1", 1)
        one = bench.launch(eight, "one", "warm1", 1)
        two = bench.launch(eight, "two", "warm2", 2)
        span_one, span_two = bench.span("warm1"), bench.span("warm2")
        print(f"2. warm actors, wall (first job's start to last job's end): 1 -> {one[1]:.1f} s "
              f"({span_one:.1f} s), 2 -> {two[1]:.1f} s ({span_two:.1f} s): 2 over 1 = "
              f"{one[1] / two[1]:.2f}x ({span_one / span_two:.2f}x)")  # fmt: skip
        write_prompts(tmp / "m", args.rows, "txt")
        million = _manifest(tmp / "m", "million.yaml", PROMPTS.format(path="captions.txt", size=args.size))
        first, code = bench.first_render_then_interrupt(million, "two", "million")
        print(f"3. {args.rows:,}-line prompt file on the warm pool: launch -> first render {first:.2f} s "
              f"(then Ctrl-C: exit {code})")  # fmt: skip
        (tmp / "m2").mkdir()
        write_prompts(tmp / "m2", 24, "txt")
        stream = _manifest(tmp / "m2", "stream.yaml", PROMPTS.format(path="captions.txt", size=args.size))
        bench.launch(stream, "two", "stream", 2, "batch_jobs=6")
        every, boundary = bench.gaps("stream", 6)
        worst = max(boundary, default=float("nan"))
        print(f"4. 24 prompts, batch_jobs=6, 2 warm actors: gaps between an actor's jobs (ledger): median "
              f"{statistics.median(every):.3f} s, max {max(every):.3f} s; across a batch boundary: max "
              f"{worst:.3f} s ({len(boundary)} crossings)")  # fmt: skip
    finally:
        print(bench.down("one"))
        print(bench.down("two"))
        left = read_record(state)
        if left is not None:  # pool down stops it once no pool is left; a failed run may not get there
            stop_local_ray(left, state)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
