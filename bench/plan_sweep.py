"""Bench: expand and validate a 100,000-job sweep manifest; prints seconds for each phase.

Generates the manifest into a temporary folder (one image, one LoRA shared by every job, so input files
are hashed once per distinct path), then times `expand_manifest` alone and the whole `load_manifest`
(parse, expand, validate, resolve and hash inputs, seeds, job ids).
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
from ltx2_batch.jobs import with_job_id
from ltx2_batch.manifest.expand import expand_manifest
from ltx2_batch.manifest.load import load_manifest, parse_yaml, validate_document


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
        for job in valid.jobs:
            with_job_id(job, "bench")
        timings["job ids (jobs.with_job_id)"] = time.perf_counter() - start
        start = time.perf_counter()
        plan = load_manifest(path, **config, model_fingerprint="bench")
        timings["load_manifest (all of it)"] = time.perf_counter() - start
    n = len(plan.jobs)
    if not len(expansion.jobs) == len(valid.jobs) == n:
        raise SystemExit(f"job counts differ: {len(expansion.jobs)}, {len(valid.jobs)}, {n}")
    print(f"jobs: {n}")
    for what, seconds in timings.items():
        print(f"{what:42s} {seconds:6.2f} s  ({seconds / n * 1e6:6.1f} us/job)")


if __name__ == "__main__":
    main()
