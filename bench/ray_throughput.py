"""Issue 4 bench: Ray engine throughput with 1 and 2 actors on the same manifest, and driver overhead.

Prints, measured in this one run on the tiny model (CPU actors on a CPU box, logical GPUs):
  - clips/hour with 1 actor and with 2 actors, and their ratio (2 cores: expect well under 2x, since both
    actors share the same two cores; on a multi-GPU node each actor has its own GPU);
  - driver overhead per job: (driver dispatch -> ledger row) minus the worker's own execute time, over the
    pure render time of the job.
Usage: python bench/ray_throughput.py [--jobs 8] [--frames 33]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from hydra import compose, initialize_config_dir

from ltx2_batch.cli import CONF_DIR, run, to_app_config

REPO = Path(__file__).resolve().parent.parent


def _manifest(folder: Path, jobs: int, frames: int) -> Path:
    seeds = ", ".join(str(i) for i in range(jobs))
    text = (
        f"defaults: {{width: 64, height: 64, num_frames: {frames}, frame_rate: 24, pipeline: distilled}}\n"
        "jobs:\n  - name: clip\n    prompt: 'A cat walks on a sunny street, soft piano music.'\n"
        f"    sweep: {{grid: {{seed: [{seeds}]}}}}\n"
    )
    path = folder / "bench.yaml"
    path.write_text(text)
    return path


def _run(manifest: Path, out: Path, workers: int) -> tuple[float, object]:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        app = to_app_config(
            compose(
                "config",
                overrides=[
                    f"manifest={manifest}",
                    f"output.root={out}",
                    "engine=ray",
                    f"engine.num_workers={workers}",
                    f"engine.num_gpus={workers}",
                    f"engine.num_cpus={workers + 1}",
                    "progress=false",
                ],
            )
        )
    t0 = time.perf_counter()
    code = run(app, REPO)
    wall = time.perf_counter() - t0
    if code:
        raise SystemExit(f"run failed with {code}")
    rows = pq.read_table(out / manifest.stem / "ledger.parquet").to_pandas()
    return wall, rows[(rows.row_kind == "job") & (rows.status == "done")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=33)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    manifest = _manifest(tmp, args.jobs, args.frames)
    results = {}
    for workers in (1, 2):
        wall, done = _run(manifest, tmp / f"out{workers}", workers)
        # steady state: from the first job's finish to the last one's (excludes actor start + model build)
        span = (done.finished_at.max() - done.finished_at.min()).total_seconds()
        steady = (len(done) - workers) / span * 3600 if span > 0 else float("nan")
        # each actor's first job also pays actor start-up and model build: leave it out of the overhead
        warm = (
            done.sort_values("started_at").groupby("worker").apply(lambda g: g.iloc[1:], include_groups=False)
        )
        driver_s = (warm.finished_at - warm.started_at).dt.total_seconds()
        overhead = (driver_s - warm.total_s).clip(lower=0)
        results[workers] = (wall, steady, overhead.mean(), warm.render_s.mean())
        print(
            f"{workers} actor(s): {len(done)} jobs in {wall:.1f}s wall (incl. Ray start + model build), "
            f"steady {steady:.0f} clips/h; driver overhead/job {overhead.mean() * 1000:.1f} ms, "
            f"render/job {warm.render_s.mean():.2f}s"
        )
    print(f"throughput ratio 2 actors / 1 actor (steady state): {results[2][1] / results[1][1]:.2f}")
    print(f"throughput ratio 2 actors / 1 actor (whole run):    {results[1][0] / results[2][0]:.2f}")
    print(f"driver overhead per job / render time per job:      {results[1][2] / results[1][3]:.4f}")


if __name__ == "__main__":
    main()
