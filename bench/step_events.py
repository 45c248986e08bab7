"""What the step bar costs, measured in one process on the tiny model.

Prints (a) warm render time with a step listener against without one, alternating, same jobs (the counting
wraps the official loop's denoising function: the ratio should sit at 1.0 within noise), and (b) how many
step events the loop produces against how many a StepThrottle lets through (what a Ray worker would put on
the driver's progress queue), as events per second of rendering. Numbers are single runs on a shared
machine; read the ratios.

Usage: python bench/step_events.py [--jobs 6] [--frames 9] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ltx2_batch.backends.base import RenderRequest
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.backends.tiny import ensure_tiny_models
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode
from ltx2_batch.core.step_events import StepEvent, StepThrottle

REPO = Path(__file__).resolve().parent.parent


def make_job(frames: int, size: int, seed: int) -> RenderJob:
    return RenderJob(
        name="bench",
        prompt="A cat walks on a sunny street, soft piano music.",
        width=size,
        height=size,
        num_frames=frames,
        frame_rate=24.0,
        seed=seed,
        pipeline=PipelineKind.DISTILLED,
        mode=RenderMode.VIDEO,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    root = REPO / "models" / "tiny"
    ensure_tiny_models(root)
    backend = create_backend(ModelConfig(root=str(root)), Path("/"))
    backend.render(RenderRequest(job=make_job(args.frames, args.size, 0)))  # warm: models built
    raw: list[StepEvent] = []
    sent: list[StepEvent] = []
    throttle = StepThrottle(sent.append)

    def listener(event: StepEvent) -> None:
        raw.append(event)
        throttle(event)

    plain_s = counted_s = 0.0
    for seed in range(1, args.jobs + 1):
        job = make_job(args.frames, args.size, seed)
        t0 = time.perf_counter()
        backend.render(RenderRequest(job=job))
        plain_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        with backend.reporting_steps(listener):  # type: ignore[attr-defined]
            backend.render(RenderRequest(job=job))
        counted_s += time.perf_counter() - t0
    backend.close()
    report = {
        "jobs": args.jobs,
        "render_s_without_listener": round(plain_s, 3),
        "render_s_with_listener": round(counted_s, 3),
        "with_over_without": round(counted_s / plain_s, 3),
        "step_events_from_the_loop": len(raw),
        "step_events_sent_by_the_throttle": len(sent),
        "loop_events_per_render_s": round(len(raw) / counted_s, 1),
        "sent_events_per_render_s": round(len(sent) / counted_s, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
