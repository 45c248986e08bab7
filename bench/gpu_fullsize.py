"""Full-size LTX-2 (19B, random weights) through our engine on one GPU: the numbers the README table wants.

One command, about 5-7 minutes on one H200 (266 s for the tiny row + 4 bf16/fp8 rows; a time budget,
--budget-s, stops a row early and says so):
  python bench/gpu_fullsize.py --out bench/results/gpu_fullsize.json

Rows, in this order: the tiny model, official pipeline class built and called per job vs our warm job (same
dtype); then model=ltx2_random in bf16 at distilled 768x512x121 (one stage) and two-stage 1536x1024x121
(distilled stage 1 at half size, spatial x2 upsampler, distilled stage 2), each with the decode in line and
then overlapped (output.overlap=decode: job n's decode on the encode thread and a side CUDA stream
beside job n+1's denoise; its MP4 hashes are compared with the in-line row's); then fp8 at both sizes.
Per row: seconds per phase (warm median), peak GPU memory, the memory policy chosen, steady-state seconds per
clip (interval between finished clips) and clips/hour (through JobExecutor with overlapped encode, MP4 files
written), warm job / sum of its transformer forwards, and first job / warm job. Seed sweep on one prompt (the
prompt cache encodes it once), as a sweep would run.

  python bench/gpu_fullsize.py --meta    # any CPU, seconds: the full-size set on the meta device, official
                                         # parameter counts checked (18.88B transformer); exit 1 on mismatch
  python bench/gpu_fullsize.py --meta --family ltx23   # the same for LTX-2.3 (22.16B diffusion model)
  python bench/gpu_fullsize.py --smoke   # any CPU or GPU (then the CUDA paths): every path, tiny model
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ltx2_batch.config import ModelConfig, ModelSource, Quantization  # noqa: E402 - after the path insert
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec, with_job_id  # noqa: E402 - after the path insert

PROMPT = "A drone flight over snowy mountains at sunset, wind and distant birds."
TRANSFORMER_19B = 18_876_174_592  # the published "19B"
# the published "22B": the diffusion model as stored (transformer + text connectors and V2 aggregate embeds)
DIFFUSION_MODEL_22B = 22_161_065_728
FULL_SIZES = (
    ("distilled_768x512x121", 768, 512, 121, False),
    ("two_stage_1536x1024x121", 1536, 1024, 121, True),
)
SMOKE_SIZES = (("distilled_64x64x9", 64, 64, 9, False), ("two_stage_128x128x9", 128, 128, 9, True))


def meta_check(family: str = "ltx2") -> dict[str, Any]:
    """Build every full-size component on the meta device and compare with the recorded official counts
    (family ltx2: the 19B set; ltx23: the 22B set)."""
    if family == "ltx23":
        from ltx2_batch.backends.random_weights23 import PARAM_COUNTS, component_sizes
    else:
        from ltx2_batch.backends.random_weights import PARAM_COUNTS, component_sizes

    t0 = time.perf_counter()
    counted = {size.name: size.params for size in component_sizes()}
    mismatched = {k: (counted.get(k), v) for k, v in PARAM_COUNTS.items() if counted.get(k) != v}
    diffusion_model = counted["transformer"] + counted["embeddings_processor"]
    published = (
        diffusion_model == DIFFUSION_MODEL_22B
        if family == "ltx23"
        else counted["transformer"] == TRANSFORMER_19B
    )
    return {
        "family": family,
        "meta_build_s": round(time.perf_counter() - t0, 2),
        "params": counted,
        "transformer_b": round(counted["transformer"] / 1e9, 2),
        "diffusion_model_b": round(diffusion_model / 1e9, 2),
        "ok": not mismatched and published,
        "mismatched": mismatched,
    }


def make_job(width: int, height: int, frames: int, two_stage: bool, seed: int) -> RenderJob:
    job = RenderJob(
        name=f"bench-{seed}",
        prompt=PROMPT,
        width=width,
        height=height,
        num_frames=frames,
        frame_rate=24.0,
        seed=seed,
        pipeline=PipelineKind.DISTILLED,
        mode=RenderMode.VIDEO,
        upscale=UpscaleSpec(spatial=two_stage),
    )
    return with_job_id(job, f"bench-{width}x{height}x{frames}-{two_stage}")


class ForwardTimer:
    """Wall seconds inside the transformers' forward calls (CUDA synchronized at both ends)."""

    def __init__(self, cuda: bool) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._cuda = cuda
        self._t0 = 0.0
        self._hooked: set[int] = set()

    def attach(self, backend: Any) -> None:  # reads the held modules: a bench may look inside
        for name in backend.cache.names():
            module = backend.cache._modules[name]
            if name.startswith("transformer:") and id(module) not in self._hooked:
                module.register_forward_pre_hook(lambda *_a: self._start())
                module.register_forward_hook(lambda *_a: self._stop())
                self._hooked.add(id(module))

    def _sync(self) -> None:
        if self._cuda:  # this thread's stream: an overlapped decode on its side stream is not waited for
            import torch

            torch.cuda.current_stream().synchronize()

    def _start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def _stop(self) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1

    def take(self) -> tuple[float, int]:
        seconds, calls, self.seconds, self.calls = self.seconds, self.calls, 0.0, 0
        return seconds, calls


def engine_row(  # noqa: PLR0915 - one measured row, its steps in the order they run on the GPU
    label: str,
    cfg: ModelConfig,
    size: tuple[str, int, int, int, bool],
    warm_jobs: int,
    deadline: float,
    out_dir: Path,
    overlap_decode: bool = False,
    make_backend: Callable[[ModelConfig], Any] | None = None,
    after: Callable[[Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """1 cold + `warm_jobs` warm jobs through JobExecutor (overlapped encode, real MP4s; with `overlap_decode`
    the decode of job n also runs on the encode thread, on its own CUDA stream, beside job n+1's denoise).
    Steady state = the interval between warm jobs' completions (files written), so the last job's
    un-overlapped encode (the drain) is not counted as throughput. `make_backend` replaces create_backend
    (bench/gpu_frontier.py's dry run); `after(backend)` runs on the warm backend before it closes and adds
    its keys to the row."""
    import torch

    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.core.outcome import WorkerIdentity
    from ltx2_batch.storage.layout import OutputLayout
    from ltx2_batch.worker.executor import JobExecutor, RunOutput
    from ltx2_batch.worker.job_files import JobFiles
    from ltx2_batch.worker.overlap import Overlap

    name, width, height, frames, two_stage = size
    cuda = torch.cuda.is_available()
    row: dict[str, Any] = {
        "row": f"{label} {name}",
        "model": cfg.name,
        "quantization": cfg.quantization.value,
        "compile": cfg.compile.value,
        "overlap_decode": overlap_decode,
    }
    t0 = time.perf_counter()
    backend = (make_backend or (lambda c: create_backend(c, REPO)))(cfg)
    row["create_backend_s"] = round(time.perf_counter() - t0, 2)
    executor = JobExecutor(backend, WorkerIdentity("bench", "local"))
    files = RunOutput(
        JobFiles(OutputLayout(out_dir / label / name), {}),
        overlap=Overlap.DECODE if overlap_decode else Overlap.ENCODE,
    )
    timer = ForwardTimer(cuda)
    jobs: list[dict[str, Any]] = []
    try:
        warm_started = None
        for index in range(warm_jobs + 1):
            if index and time.perf_counter() + jobs[-1]["render_s"] > deadline:
                row["truncated"] = f"time budget: {index - 1} warm jobs of {warm_jobs}"
                break
            if index == 1:
                executor.drain()
                warm_started = time.perf_counter()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            future = executor.submit(make_job(width, height, frames, two_stage, seed=index + 1), files)
            render_wall = time.perf_counter() - started
            timer.attach(backend)  # the first job built the transformers inside submit
            forward_s, calls = timer.take() if index else (0.0, 0)
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
            if index == 0:
                future.result()  # the cold job's files are complete before the warm clock starts
            entry = {
                "render_s": render_wall,
                "forward_s": forward_s,
                "forwards": calls,
                "peak_gib": peak,
                "reserved_gib": reserved,
                "future": future,
            }
            future.add_done_callback(lambda _f, e=entry: e.__setitem__("done_at", time.perf_counter()))
            jobs.append(entry)
        executor.drain()
        warm_wall = time.perf_counter() - warm_started if warm_started else None
        if after is not None and all(j["future"].result().status == "done" for j in jobs):
            row |= after(backend)
    finally:
        executor.shutdown()
        plan = backend.memory_plan.as_info() if backend.memory_plan else {}
        backend.close()
        if cuda:
            torch.cuda.empty_cache()
    outcomes = [j["future"].result() for j in jobs]
    hashes = [_sha256(o.output_path) for o in outcomes if o.output_path]
    failed = [o.error for o in outcomes if o.status != "done"]
    if failed:
        row["error"] = failed[0][-800:]
        return row
    warm = jobs[1:]
    warm_totals = [o.total_s for o in outcomes[1:]]
    phases = (
        {
            k: round(statistics.median(o.phases.get(k, 0.0) for o in outcomes[1:]), 3)
            for k in outcomes[-1].phases
        }
        if warm
        else {}
    )
    row |= {
        **plan,
        "sha256": hashes,
        "warm_jobs": len(warm),
        "first_job_s": round(outcomes[0].total_s, 2),
        "first_job_load_s": round(outcomes[0].load_s, 2),
        "warm_render_s": round(statistics.median(j["render_s"] for j in warm), 3) if warm else None,
        "warm_encode_s": round(statistics.median(o.encode_s for o in outcomes[1:]), 3) if warm else None,
        "phases_warm_median_s": phases,
        "phases_first_s": {k: round(v, 3) for k, v in outcomes[0].phases.items()},
        "forwards_per_job": warm[-1]["forwards"] if warm else None,
        "peak_gpu_gib": round(max(j["peak_gib"] for j in jobs), 2) if cuda else None,
        "peak_reserved_gib": round(max(j["reserved_gib"] for j in jobs), 2) if cuda else None,
    }
    if warm and warm_wall:
        forward_s = statistics.median(j["forward_s"] for j in warm)
        done = [j["done_at"] for j in warm]
        interval = (done[-1] - done[0]) / (len(done) - 1) if len(done) > 1 else warm_wall
        row["steady_interval_s"] = round(interval, 3)
        row["clips_per_hour_steady"] = round(3600 / interval, 1)
        row["clips_per_hour_incl_drain"] = round(3600 * len(warm) / warm_wall, 1)
        row["ratio_warm_job_over_forwards"] = round(
            statistics.median(j["render_s"] for j in warm) / forward_s, 3
        )
        row["ratio_interval_over_forwards"] = round(interval / forward_s, 3)
        row["ratio_first_over_warm"] = round(outcomes[0].total_s / statistics.median(warm_totals), 2)
    return row


def _sha256(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def official_row(smoke: bool) -> dict[str, Any]:
    """Tiny model: the official DistilledPipeline built and called per job vs our warm job, same dtype."""
    import torch
    from ltx_pipelines.distilled import DistilledPipeline

    from ltx2_batch.backends.base import RenderRequest
    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.backends.tiny import TINY_LAYOUT, ensure_tiny_models

    root = REPO / "models" / "tiny"
    ensure_tiny_models(root)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width, height, frames = (128, 128, 9) if smoke else (512, 512, 121)
    job = make_job(width, height, frames, True, seed=2)
    ours = create_backend(ModelConfig(root=str(root), dtype="bf16"), REPO)  # official classes are bf16
    ours.render(RenderRequest(job=make_job(width, height, frames, True, seed=1)))
    t0 = time.perf_counter()
    ours.render(RenderRequest(job=job))
    ours_s = time.perf_counter() - t0
    ours.close()
    t0 = time.perf_counter()
    pipeline = DistilledPipeline(
        distilled_checkpoint_path=str(root / TINY_LAYOUT["checkpoint"]),
        gemma_root=str(root / TINY_LAYOUT["gemma_root"]),
        spatial_upsampler_path=str(root / TINY_LAYOUT["spatial_upsampler"]),
        loras=[],
        device=device,
    )
    with torch.inference_mode():
        video, audio = pipeline(
            prompt=PROMPT, seed=2, height=height, width=width, num_frames=frames, frame_rate=24.0, images=[]
        )
        torch.cat([chunk.cpu() for chunk in video])
        audio.waveform.cpu()
    official_s = time.perf_counter() - t0
    return {
        "row": f"tiny official-per-job vs ours-warm {width}x{height}x{frames} two-stage bf16",
        "ours_warm_s": round(ours_s, 3),
        "official_per_job_s": round(official_s, 3),
        "ratio_official_over_ours": round(official_s / ours_s, 2),
    }


def main() -> int:  # noqa: PLR0915 - the benchmark's options and rows, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--meta", action="store_true", help="CPU check of the full-size configs (meta device)"
    )
    parser.add_argument(
        "--family", choices=("ltx2", "ltx23"), default="ltx2", help="with --meta: the 19B or the 22B set"
    )
    parser.add_argument("--smoke", action="store_true", help="every path of this script on the tiny model")
    parser.add_argument("--warm-jobs", type=int, default=5)
    parser.add_argument("--fp8-warm-jobs", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=450.0, help="stop starting jobs after this")
    parser.add_argument("--skip-fp8", action="store_true")
    parser.add_argument("--skip-overlap-decode", action="store_true", help="no overlapped-decode rows")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.meta:
        report = meta_check(args.family)
        print(json.dumps(report, indent=1))
        return 0 if report["ok"] else 1

    import torch

    from ltx2_batch.backends import compat

    compat.prepare()
    started = time.perf_counter()
    deadline = started + args.budget_s
    cuda = torch.cuda.is_available()
    header = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    if cuda:
        header["gpu_total_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        torch.backends.cuda.matmul.allow_tf32 = True
    print(json.dumps(header), flush=True)
    rows: list[dict[str, Any]] = [header]
    try:
        rows.append(official_row(args.smoke))
    except Exception as exc:
        rows.append(
            {
                "row": "tiny official-per-job vs ours-warm",
                "error": repr(exc)[:300],
                "traceback": traceback.format_exc()[-3000:],
            }
        )
    print(json.dumps(rows[-1]), flush=True)
    write_rows(args.out, rows)
    if args.smoke:
        base = ModelConfig(name="tiny", source=ModelSource.tiny, root=str(REPO / "models" / "tiny"))
        sizes, warm = SMOKE_SIZES, min(args.warm_jobs, 2)
    else:
        base = ModelConfig(name="ltx2_random", source=ModelSource.random, root=str(REPO / "models"))
        sizes, warm = FULL_SIZES, args.warm_jobs
    # bf16 rows first (the README table's), each size with the decode in line, then overlapped; fp8 after
    plan = [(label, base, warm, size, ovl) for size in sizes for label, ovl in variants_bf16(args)]
    if cuda and not args.skip_fp8:
        fp8 = ModelConfig(**{**base.__dict__, "quantization": Quantization.fp8_cast})
        plan += [("fp8", fp8, args.fp8_warm_jobs, size, False) for size in sizes]
    weights = [2.0 if size[4] else 1.0 for *_rest, size, _ovl in plan]  # a two-stage row gets twice the time
    with tempfile.TemporaryDirectory(prefix="gpu-fullsize-") as tmp:
        for index, (label, cfg, n_warm, size, ovl) in enumerate(plan):
            now = time.perf_counter()
            share = weights[index] / sum(weights[index:])
            row_deadline = now + (deadline - now) * share
            if now > deadline:
                rows.append({"row": f"{label} {size[0]}", "skipped": "time budget"})
            else:
                try:
                    rows.append(engine_row(label, cfg, size, n_warm, row_deadline, Path(tmp), ovl))
                    compare_with_sequential(rows)
                except torch.OutOfMemoryError as exc:
                    rows.append({"row": f"{label} {size[0]}", "error": f"OOM: {str(exc)[:300]}"})
                except Exception as exc:  # one broken row must not cost the others their figures
                    rows.append(
                        {
                            "row": f"{label} {size[0]}",
                            "error": repr(exc)[:300],
                            "traceback": traceback.format_exc()[-3000:],
                        }
                    )
                if cuda:
                    torch.cuda.empty_cache()
            print(json.dumps(rows[-1]), flush=True)
            write_rows(args.out, rows)
    rows.append({"wall_s": round(time.perf_counter() - started, 1)})
    print(json.dumps(rows[-1]), flush=True)
    write_rows(args.out, rows)
    return 0


def variants_bf16(args: argparse.Namespace) -> list[tuple[str, bool]]:
    return [("bf16", False)] + ([] if args.skip_overlap_decode else [("bf16 overlap_decode", True)])


def compare_with_sequential(rows: list[dict[str, Any]]) -> None:
    """An overlapped-decode row renders the seeds of the row before it: its MP4s must be the same bytes."""
    last, before = rows[-1], rows[-2] if len(rows) > 1 else {}
    if last.get("overlap_decode") and before.get("sha256") and last.get("sha256"):
        n = min(len(before["sha256"]), len(last["sha256"]))
        last["mp4s_identical_to_inline_decode"] = before["sha256"][:n] == last["sha256"][:n]
        last["speedup_vs_inline_decode"] = round(before["steady_interval_s"] / last["steady_interval_s"], 3)


def write_rows(out: Path | None, rows: list[dict[str, Any]]) -> None:
    """After every row, so a run cut short by its time limit still leaves what it measured."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
