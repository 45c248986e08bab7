"""Keyframe interpolation by checkpoint kind, on the tiny model: transformer forwards and seconds of one job
of the same shape as a plain distilled job, a keyframe job on the distilled checkpoint (the distilled recipe:
8 + 3 unguided forwards) and a keyframe job on the same files playing a dev checkpoint (the official guided
recipe at the family's 40 steps, the distilled LoRA in stage 2). Each backend is warmed on its job first; the
second render is timed. Single runs on a shared machine: read the ratios.

Usage: OMP_NUM_THREADS=1 python bench/keyframe_recipes.py [--size 64] [--frames 9]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ltx2_batch.backends.base import RenderRequest
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import ImageCondition, PipelineKind, RenderJob, RenderMode


def keyframes(folder: Path, size: int, frames: int) -> tuple[ImageCondition, ...]:
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size]
    first = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 128)], -1).astype(np.uint8)
    Image.fromarray(first).save(folder / "first.png")
    Image.fromarray(255 - first).save(folder / "last.png")
    return (
        ImageCondition(str(folder / "first.png"), 0),
        ImageCondition(str(folder / "last.png"), frames - 1),
    )


def job(pipeline: PipelineKind, size: int, frames: int, images: tuple[ImageCondition, ...] = ()) -> RenderJob:
    return RenderJob(
        name="bench",
        prompt="A red disc turns blue.",
        width=size,
        height=size,
        num_frames=frames,
        frame_rate=24.0,
        seed=3,
        pipeline=pipeline,
        mode=RenderMode.VIDEO,
        images=images,
    )


def measured(backend: Any, render_job: RenderJob) -> tuple[float, int, dict[str, Any]]:
    """(seconds, transformer forwards, sidecar recipe) of the second render of `render_job` (the first
    warms)."""
    backend.render(RenderRequest(job=render_job))
    plan = backend._resolve(render_job.pipeline, render_job.loras)  # the job's transformers
    models = {
        id(m): m for m in (backend.transformer(plan.loras.stage1), backend.transformer(plan.loras.stage2))
    }
    count = [0]

    def hook(*_: object) -> None:
        count[0] += 1

    handles = [m.register_forward_hook(hook) for m in models.values()]
    t0 = time.perf_counter()
    result = backend.render(RenderRequest(job=render_job))
    seconds = time.perf_counter() - t0
    for handle in handles:
        handle.remove()
    return seconds, count[0], result.info["recipe"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = keyframes(root, args.size, args.frames)
        models = str(root / "models")
        distilled = create_backend(ModelConfig(root=models), Path("/"))
        dev = create_backend(ModelConfig(root=models, checkpoint_kind=CheckpointKind.dev), Path("/"))
        rows = [
            (
                "plain distilled (distilled ckpt)",
                distilled,
                job(PipelineKind.DISTILLED, args.size, args.frames),
            ),
            (
                "keyframe (distilled ckpt)",
                distilled,
                job(PipelineKind.KEYFRAME, args.size, args.frames, images),
            ),
            (
                "keyframe (dev ckpt, official)",
                dev,
                job(PipelineKind.KEYFRAME, args.size, args.frames, images),
            ),
        ]
        print(
            f"tiny model, float32, {args.size}x{args.size} x {args.frames} frames, one torch thread per OMP"
        )
        for name, backend, render_job in rows:
            seconds, forwards, recipe = measured(backend, render_job)
            steps = f"{recipe['stage_1_steps']} + {recipe['stage_2_steps']} steps"
            print(
                f"{name:34s} {seconds:7.2f} s  {forwards:4d} forwards  {steps}  guidance={recipe['guidance']}"
            )
        distilled.close()
        dev.close()


if __name__ == "__main__":
    main()
