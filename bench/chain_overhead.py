"""A chained job's wall time over the sum of its chunk renders, and the bytes of resume state per chunk.

What the ratio measures beyond the renders: the latent and audio handoff, storing each chunk's resume state
(lossless kept frames + latents) and feeding the one stitch encoder, both on the stitch thread beside the next
chunk's render, and what is left after the last render (its frames, the audio mux, the check of the file).
Measured on the tiny model with a warm backend (a short job first, so the model build is excluded), in one
process, at two shapes: a small one where encoding is comparable to rendering, and one where rendering
dominates (the case the <= 1.05 target is about). Resume bytes are compared with the raw kept frames.

Where rendering dominates: the tiny model's step is orders of magnitude cheaper than a real model's
while the encode costs the same, and its frames are noise, the slowest content x264 meets (about 7x a smooth
gradient's encode time here), so at its default steps every shape is encode-heavy (ti2vid at 256x256: about
2:1 render:encode per chunk). On the H200 the distilled rows measured 1.4:1 (bench/results); a guided
pipeline runs about 15 times the distilled one's transformer forwards per clip (40 steps of 3 guided passes
against 8 single ones; an estimate from the recipes, not a measurement), so the render-dominant shape here
runs ti2vid at 300 steps (render:encode 12:1 measured here on a quiet machine). Each row prints its own
proportion: the mean chunk render over the time to encode one chunk's kept frames (read back from the job's
file) with the job's encoder settings, alone.
Usage: python bench/chain_overhead.py [--shapes 64x500:distilled,256x300:ti2vid:300]
(SIZExFRAMES:PIPELINE[:STEPS])
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
from ltx2_batch.media.probe import read_frames
from ltx2_batch.media.write import Mp4Writer

REPO = Path(__file__).resolve().parent.parent


def measure(size: int, frames: int, pipeline: str, steps: int | None) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    manifest = tmp / "chain.yaml"
    step_field = f", num_inference_steps: {steps}" if steps else ""
    manifest.write_text(
        f"defaults: {{width: {size}, height: {size}, frame_rate: 24, pipeline: {pipeline}{step_field}}}\n"
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
    kept = max(c["frames"] for c in sidecar["chunks"])
    frames_back = read_frames(job.output_path, 0, kept)
    t0 = time.perf_counter()
    with Mp4Writer(tmp / "encode_probe.mp4", 24) as writer:
        writer.write_frames(frames_back)
    encode_one = time.perf_counter() - t0
    return {
        "size": size,
        "pipeline": pipeline,
        "steps": steps,
        "frames": frames,
        "chunks": len(chunks),
        "run_wall_s": round(wall, 2),
        "chunk_render_sum_s": round(float(chunks.render_s.sum()), 3),
        "job_total_s": round(float(job.total_s), 3),
        "stitch_tail_s": round(float(job.encode_s), 3),
        "chunk_encode_alone_s": round(encode_one, 3),
        "render_over_encode": round(float(chunks.render_s.mean()) / encode_one, 1),
        "ratio": round(float(job.total_s / chunks.render_s.sum()), 3),
        "resume_bytes_per_chunk": round(sum(resume) / len(resume)),
        "raw_kept_frame_bytes_per_chunk": round(sum(raw) / len(raw)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--shapes",
        default="64x500:distilled,256x300:ti2vid:300",
        help="SIZExFRAMES:PIPELINE[:STEPS],... (square frames; STEPS: stage-1 steps, the pipeline's own "
        "when left out). See the module docstring for why the render-dominant shape sets its steps",
    )
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    for shape in args.shapes.split(","):
        dims, _, rest = shape.partition(":")
        pipeline, _, steps = rest.partition(":")
        size, frames = (int(v) for v in dims.split("x"))
        row = measure(size, frames, pipeline or "distilled", int(steps) if steps else None)
        print(json.dumps(row))
        resume, raw = row["resume_bytes_per_chunk"], row["raw_kept_frame_bytes_per_chunk"]
        print(
            f"{frames} frames at {size}x{size} ({row['pipeline']}"
            f"{', ' + str(row['steps']) + ' steps' if row['steps'] else ''}), {row['chunks']} chunks: "
            "chained job / sum of chunk renders "
            f"{row['ratio']:.3f} (tail after the last render {row['stitch_tail_s']:.2f}s; render:encode "
            f"{row['render_over_encode']}:1 per chunk); resume state "
            f"{resume:,} B per chunk (raw kept frames {raw:,} B)"
        )


if __name__ == "__main__":
    main()
