"""A chained job's wall time over the sum of its chunk renders, and the bytes of resume state per chunk.

What the ratio measures beyond the renders: the latent and audio handoff, storing each chunk's resume state
(lossless kept frames + latents) and feeding the one stitch encoder, both on the stitch thread beside the next
chunk's render, and what is left after the last render (its frames, the audio mux, the check of the file).
Measured on the tiny model with a warm backend (a short job first, so the model build is excluded), in one
process, at two shapes: a small one where encoding is comparable to rendering, and one where rendering
dominates (the case the <= 1.05 target is about). Resume bytes are compared with the raw kept frames.
Usage: python bench/chain_overhead.py [--shapes 64x500:distilled,256x300:ti2vid]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from hydra import compose, initialize_config_dir

from ltx2_batch.cli import CONF_DIR, run, to_app_config

REPO = Path(__file__).resolve().parent.parent


def measure(size: int, frames: int, pipeline: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    manifest = tmp / "chain.yaml"
    manifest.write_text(
        f"defaults: {{width: {size}, height: {size}, frame_rate: 24, pipeline: {pipeline}}}\n"
        "jobs:\n"
        "  - {name: warmup, prompt: 'warm the model', num_frames: 9, seed: 1}\n"
        f"  - {{name: long, prompt: 'A long walk along the beach at dusk', num_frames: {frames}, seed: 2}}\n"
    )
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        app = to_app_config(
            compose("config", overrides=[f"manifest={manifest}", f"output.root={tmp}", "progress=false"])
        )
    t0 = time.perf_counter()
    if run(app, REPO):
        raise SystemExit("run failed")
    wall = time.perf_counter() - t0
    rows = pq.read_table(tmp / "chain" / "ledger.parquet").to_pandas()
    job = rows[(rows.row_kind == "job") & (rows.job_name == "long") & (rows.status == "done")].iloc[0]
    chunks = rows[(rows.row_kind == "chunk") & (rows.job_id == job.job_id)]
    sidecar = json.loads(Path(job.sidecar_path).read_text())
    stored = [c for c in sidecar["chunks"] if c["resume_bytes"]]  # the last chunk's state is not stored
    resume = [c["resume_bytes"] for c in stored]
    raw = [c["frames"] * size * size * 3 for c in stored]
    return {
        "size": size,
        "pipeline": pipeline,
        "frames": frames,
        "chunks": len(chunks),
        "run_wall_s": round(wall, 2),
        "chunk_render_sum_s": round(float(chunks.render_s.sum()), 3),
        "job_total_s": round(float(job.total_s), 3),
        "stitch_tail_s": round(float(job.encode_s), 3),
        "ratio": round(float(job.total_s / chunks.render_s.sum()), 3),
        "resume_bytes_per_chunk": round(sum(resume) / len(resume)),
        "raw_kept_frame_bytes_per_chunk": round(sum(raw) / len(raw)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--shapes",
        default="64x500:distilled,256x300:ti2vid",
        help="SIZExFRAMES:PIPELINE,... (square frames). ti2vid (guided, 2 passes a step, two stages) is "
        "where rendering dominates the encode on a CPU, as the distilled pipeline does on a GPU",
    )
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    for shape in args.shapes.split(","):
        dims, _, pipeline = shape.partition(":")
        size, frames = (int(v) for v in dims.split("x"))
        row = measure(size, frames, pipeline or "distilled")
        print(json.dumps(row))
        resume, raw = row["resume_bytes_per_chunk"], row["raw_kept_frame_bytes_per_chunk"]
        print(
            f"{frames} frames at {size}x{size} ({row['pipeline']}), {row['chunks']} chunks: "
            "chained job / sum of chunk renders "
            f"{row['ratio']:.3f} (tail after the last render {row['stitch_tail_s']:.2f}s); resume state "
            f"{resume:,} B per chunk (raw kept frames {raw:,} B)"
        )


if __name__ == "__main__":
    main()
