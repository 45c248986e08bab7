"""What publishing to object storage costs: upload seconds over render seconds per job, and a run's wall time
over its summed renders, on a local disk against an S3 API, measured in one run of this script.

The S3 API is moto's server on loopback (started here, stopped at the end; `pip install 'moto[server]'`),
so the numbers are the product's own cost (hashing, the confirmed upload of video, thumbnail and sidecar,
journal parts, the job table, compaction, the contact sheet) plus a fast local network, not a cloud's
latency. The renders are the fake model's (`model=fake`, no weights) with `fake_render_s`, a render that
takes that long without using the CPU, as a GPU render leaves the CPU free: the uploads of job n run on
the worker's upload thread while job n+1 "renders", which is what the run-over-renders ratio shows.
Usage: python bench/object_storage.py [--jobs 8] [--size 384] [--frames 49] [--render-s 0.6]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
from hydra import compose, initialize_config_dir

from ltx2_batch.cli import CONF_DIR, run, to_app_config
from ltx2_batch.storage.objects import ObjectStore

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    exe = str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return proc, endpoint
        except OSError:
            time.sleep(0.1)  # polling the server's start, under a deadline
    proc.kill()
    raise SystemExit("moto_server did not start")


def _manifest(folder: Path, jobs: int, size: int, frames: int, render_s: float) -> Path:
    lines = [
        f"defaults: {{width: {size}, height: {size}, num_frames: {frames}, upscale: {{spatial: false}},",
        f"  pipeline: distilled, tags: {{fake_render_s: '{render_s}'}}}}",
        "jobs:",
        *(
            f"  - {{name: clip{i}, prompt: 'Clip number {i} of the benchmark', seed: {i}}}"
            for i in range(jobs)
        ),
    ]
    path = folder / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(root: str, manifest: Path, scratch: Path, endpoint: str | None) -> dict[str, float]:
    overrides = [f"manifest={manifest}", "model=fake", f"output.root={root}", f"output.scratch={scratch}"]
    overrides += ["progress=false", *([f"output.endpoint_url={endpoint}"] if endpoint else [])]
    app = to_app_config(compose("config", overrides=overrides))
    t0 = time.perf_counter()
    if run(app, REPO):
        raise SystemExit(f"run into {root} failed")
    wall = time.perf_counter() - t0
    run_dir = f"{root}/bench"
    if endpoint:
        data = ObjectStore(run_dir, endpoint).read("ledger.parquet") or b""
        table = pq.read_table(io.BytesIO(data))
    else:
        table = pq.read_table(Path(run_dir) / "ledger.parquet")
    rows = [r for r in table.to_pylist() if r["row_kind"] == "job" and r["status"] == "done"]
    render = sum(r["render_s"] for r in rows)
    uploads = [r["upload_s"] / r["render_s"] for r in rows if r.get("upload_s") is not None]
    return {
        "jobs": len(rows),
        "wall_s": round(wall, 3),
        "render_sum_s": round(render, 3),
        "wall_over_renders": round(wall / render, 3),
        "upload_over_render_mean": round(sum(uploads) / len(uploads), 4) if uploads else 0.0,
        "upload_over_render_max": round(max(uploads), 4) if uploads else 0.0,
        "mean_output_bytes": round(sum(r["output_bytes"] or 0 for r in rows) / len(rows)) if uploads else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--render-s", type=float, default=0.6, help="each fake render's seconds (CPU idle)")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-objects-"))
    proc, endpoint = _moto()
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    try:
        ObjectStore("s3://bench-bucket", endpoint).fs.mkdir("bench-bucket")
        manifest = _manifest(tmp, args.jobs, args.size, args.frames, args.render_s)
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            local = measure(str(tmp / "local"), manifest, tmp / "scratch", None)
            bucket = measure("s3://bench-bucket/runs", manifest, tmp / "scratch", endpoint)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    shape = f"{args.jobs} jobs of {args.size}x{args.size}x{args.frames}, {args.render_s}s renders"
    print(json.dumps({"shape": shape, "local": local, "s3": bucket}))
    print(
        f"{shape}: upload/render per job {bucket['upload_over_render_mean']:.3f} mean, "
        f"{bucket['upload_over_render_max']:.3f} max ({bucket['mean_output_bytes']:,} B videos); "
        f"run wall/summed renders: local disk {local['wall_over_renders']:.3f}, "
        f"S3 API {bucket['wall_over_renders']:.3f}"
    )


if __name__ == "__main__":
    main()
