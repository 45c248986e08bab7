"""What holding models across jobs buys, measured in one process on the tiny model.

Prints (a) warm second-job wall time against the pure denoise+decode time of that job (the backend's own
overhead), (b) the first job (models built) against the second (warm), (c) the official pipeline class built
and called per job, as a script that instantiates it per job does, against our warm job in the same dtype (the
official classes hard-code bf16, ~60x slower than float32 on a CPU, so both sides run bf16 there), and (d) one
121-frame window. Numbers are single runs on a shared machine; read the ratios.

Usage: python bench/backend_warm.py [--frames 9] [--size 64] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ltx2_batch.backends.base import RenderRequest
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.backends.tiny import TINY_LAYOUT, ensure_tiny_models
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode

REPO = Path(__file__).resolve().parent.parent
PURE = ("stage1", "upsample", "stage2", "decode_video", "decode_audio")


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


def timed_render(backend: object, job: RenderJob) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    result = backend.render(RenderRequest(job=job))  # type: ignore[attr-defined]
    return time.perf_counter() - t0, result.timings


def official_per_job(root: Path, job: RenderJob) -> float:
    """DistilledPipeline constructed and called for one job (its ModelLedger builds every model per call)."""
    import torch
    from ltx_pipelines.distilled import DistilledPipeline

    t0 = time.perf_counter()
    pipeline = DistilledPipeline(
        distilled_checkpoint_path=str(root / TINY_LAYOUT["checkpoint"]),
        gemma_root=str(root / TINY_LAYOUT["gemma_root"]),
        spatial_upsampler_path=str(root / TINY_LAYOUT["spatial_upsampler"]),
        loras=[],
        device=torch.device("cpu"),
    )
    with torch.inference_mode():
        video, audio = pipeline(
            prompt=job.prompt,
            seed=job.seed,
            height=job.height,
            width=job.width,
            num_frames=job.num_frames,
            frame_rate=job.frame_rate,
            images=[],
        )
        torch.cat(list(video))
        audio.waveform.cpu()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--fresh", action="store_true", help="build the tiny set in a temp dir (times the build)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tiny-bench-")) / "tiny" if args.fresh else REPO / "models" / "tiny"
    report: dict[str, object] = {"build_s": round(ensure_tiny_models(root).seconds, 2)}

    t0 = time.perf_counter()
    backend = create_backend(ModelConfig(root=str(root)), REPO)
    report["create_backend_s"] = round(time.perf_counter() - t0, 2)
    first_s, first_t = timed_render(backend, make_job(args.frames, args.size, 1))
    second_s, second_t = timed_render(backend, make_job(args.frames, args.size, 2))
    pure = sum(second_t[k] for k in PURE)
    report |= {
        "first_job_s": round(first_s, 3),
        "first_job_load_s": round(first_t.get("load", 0.0), 3),
        "second_job_s": round(second_s, 3),
        "second_job_pure_denoise_decode_s": round(pure, 3),
        "second_job_text_encode_s": round(second_t["text_encode"], 3),
        "ratio_second_wall_over_pure": round(second_s / pure, 2),
        "ratio_first_over_second": round(first_s / second_s, 2),
    }
    long_s, long_t = timed_render(backend, make_job(121, 64, 3))
    report |= {
        "window_121x64x64_s": round(long_s, 3),
        "window_121_phases": {k: round(v, 3) for k, v in long_t.items()},
    }
    backend.close()

    bf16 = create_backend(ModelConfig(root=str(root), dtype="bf16"), REPO)
    timed_render(bf16, make_job(args.frames, args.size, 1))  # warm
    ours_bf16_s, _ = timed_render(bf16, make_job(args.frames, args.size, 2))
    bf16.close()
    official_s = official_per_job(root, make_job(args.frames, args.size, 2))
    report |= {
        "ours_warm_bf16_s": round(ours_bf16_s, 3),
        "official_per_job_bf16_s": round(official_s, 3),
        "ratio_official_per_job_over_ours_warm": round(official_s / ours_bf16_s, 2),
        "frames": args.frames,
        "size": args.size,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
