"""Issue 5 bench: a chained job's wall time over the sum of its chunk render times.

The difference is the chaining machinery: latent handoff, per-chunk latent/frame files, stitching (one
encode of all kept frames + audio), the final probe. Measured on the tiny model with a warm backend (a
short job first, so model build is excluded), in one process.
Usage: python bench/chain_overhead.py [--frames 500] [--size 64]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    manifest = tmp / "chain.yaml"
    manifest.write_text(
        f"defaults: {{width: {args.size}, height: {args.size}, frame_rate: 24, pipeline: distilled}}\n"
        "jobs:\n"
        "  - {name: warmup, prompt: 'warm the model', num_frames: 9, seed: 1}\n"
        f"  - {{name: long, prompt: 'A long walk along the beach at dusk', "
        f"num_frames: {args.frames}, seed: 2}}\n"
    )
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        app = to_app_config(
            compose("config", overrides=[f"manifest={manifest}", f"output.root={tmp}", "progress=false"])
        )
    t0 = time.perf_counter()
    if run(app, REPO):
        raise SystemExit("run failed")
    print(f"run wall {time.perf_counter() - t0:.1f}s")
    rows = pq.read_table(tmp / "chain" / "ledger.parquet").to_pandas()
    job = rows[(rows.row_kind == "job") & (rows.job_name == "long") & (rows.status == "done")].iloc[0]
    chunks = rows[(rows.row_kind == "chunk") & (rows.job_id == job.job_id)]
    chunk_sum = chunks.render_s.sum()
    print(
        f"{args.frames} frames at {args.size}x{args.size}: {len(chunks)} chunks, "
        f"sum of chunk renders {chunk_sum:.2f}s, job total {job.total_s:.2f}s "
        f"(render {job.render_s:.2f}s, stitch+encode {job.encode_s:.2f}s)"
    )
    print(f"chained job wall / sum of chunk render times: {job.total_s / chunk_sum:.3f}")


if __name__ == "__main__":
    main()
