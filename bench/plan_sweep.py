"""Bench: expand and validate a 100,000-job sweep manifest; prints seconds for each phase.

Generates the manifest into a temporary folder (one image, one LoRA shared by every job, so input files
are hashed once per distinct path), then times `expand_manifest` alone, `validate_document` without and
with job ids, and the whole of what a run does to plan it, `open_manifest` and every job of `iter_jobs`
(parse, expand, validate, resolve and hash inputs, seeds, job ids, duplicate checks): the last line is
the figure the README quotes. For comparison it also
times `jobs.compute_job_id` one job at a time (the path for a job built by hand) on 10,000 of the jobs.
Run: `python bench/plan_sweep.py` after `make install` (or with `PYTHONPATH=.`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.jobs import compute_job_id
from ltx2_batch.manifest.document import parse_yaml
from ltx2_batch.manifest.expand import expand_manifest
from ltx2_batch.manifest.load import open_manifest, validate_document


def write_manifest(folder: Path, seeds: int) -> Path:
    """2 jobs x seeds x 5 cfg x zip(5 prompts) x upscale grid(2): with seeds=1000 -> 100,000 jobs."""
    Image.new("RGB", (64, 64), (90, 120, 200)).save(folder / "start.png")  # validation reads its header
    (folder / "style.safetensors").write_bytes(b"lora bytes")
    doc = {
        "base_seed": 1,
        "defaults": {"width": 768, "height": 512, "num_frames": 121, "frame_rate": 24},
        "sweep": {"grid": {"seed": list(range(seeds)), "video_guider_params.cfg_scale": [1, 2, 3, 4, 5]}},
        "jobs": [
            {
                "name": "i2v",
                "prompt": "placeholder",
                "images": [{"path": "start.png", "frame_idx": 0, "strength": 1.0}],
                "loras": [{"path": "style.safetensors", "strength": 0.8}],
                "sweep": {"zip": {"prompt": [f"prompt number {i}" for i in range(10)]}},
            },
            {
                "name": "t2v",
                "prompt": "a cat",
                "sweep": {
                    "grid": {"upscale.temporal": [True, False]},
                    "zip": {"num_frames": [9, 17, 25, 33, 41]},
                },
            },
        ],
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=1000, help="1000 seeds -> 100,000 jobs")
    args = parser.parse_args()
    config = {"chaining": ChainingConfig(), "paths": PathsConfig()}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_manifest(Path(tmp), args.seeds)
        doc = parse_yaml(path.read_bytes(), str(path))
        timings = {}
        start = time.perf_counter()
        expansion = expand_manifest(doc)
        timings["expand (sweeps, defaults, names)"] = time.perf_counter() - start
        start = time.perf_counter()
        valid = validate_document(doc, path, **config)
        timings["validate (expand + every rule + inputs)"] = time.perf_counter() - start
        start = time.perf_counter()
        validate_document(doc, path, **config, model_fingerprint="bench")
        timings["validate + job ids"] = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        jobs = tuple(open_manifest(path, **config, model_fingerprint="bench").iter_jobs())
        timings["open_manifest + iter_jobs (all of it)"] = time.perf_counter() - start
        total_cpu = time.process_time() - cpu
        sample = valid.jobs[:10_000]
        start = time.perf_counter()
        for job in sample:
            compute_job_id(job, "bench")
        one_by_one = (time.perf_counter() - start) / len(sample)
    n = len(jobs)
    if not len(expansion.jobs) == len(valid.jobs) == n:
        raise SystemExit(f"job counts differ: {len(expansion.jobs)}, {len(valid.jobs)}, {n}")
    print(f"jobs: {n}")
    for what, seconds in timings.items():
        print(f"{what:42s} {seconds:6.2f} s  ({seconds / n * 1e6:6.1f} us/job)")
    print(f"{'compute_job_id one job at a time':42s} {'':8s}  ({one_by_one * 1e6:6.1f} us/job)")
    print(f"open_manifest CPU time (this process only; less load-sensitive than wall): {total_cpu:.2f} s")


if __name__ == "__main__":
    main()
