"""The GPU frontier on one GPU: fp8 matmuls, torch.compile, LTX-2.3 full size, a cold start, the 80 GB plan.

One command on a lent H200 (bench/gpu_frontier_plan.md: the order of the steps, their expected seconds, how
the wheels travel):
  python bench/gpu_frontier.py --budget-s 470 --out $OUT/gpu_frontier.json

Steps, in priority order; a step starts only if its estimate fits in what is left of --budget-s (else its
row says "skipped: time budget"), and every row is written to --out as it ends:
  ltx2_bf16        LTX-2 19B (`model=ltx2_random`) distilled 768x512x121, bf16: 1 cold + warm jobs through
                   JobExecutor (MP4s written); captures one transformer forward's inputs and output, times it
  ltx2_fp8_scaled  the same with model.quantization=fp8_scaled: seconds per clip and per forward, peak
                   memory, the transformer (velocity) output's relative error against bf16 on those inputs
  ltx2_fp8_scaled_compiled   ... and model.compile=blocks: compile seconds (first job over the uncompiled
                   first job) reported apart from the steady state, and the clips it takes to pay them back
  ltx23_bf16, ltx23_fp8_scaled   LTX-2.3 22B (`model=ltx23_random`), distilled 768x512x121
  cold_start       writes LTX-2 19B in the official on-disk format with random values (fp8 transformer
                   checkpoint, Gemma-3-12B shards, x2 upsampler; ~45 GiB) to local disk, drops it from the
                   page cache, then times a fresh process from launch to its first finished clip, and GB/s
  plan_80gb        the process capped at 80 GiB (torch.cuda.set_per_process_memory_fraction): the plan the
                   memory policy picks there, run end to end at two-stage 1536x1024x121; peak < cap
  ltx23_bf16_two_stage, ltx23_fp8_scaled_two_stage   LTX-2.3 two-stage 1536x1024x121
  ltx2_bf16_compiled, ltx2_fp8_cast   the remaining comparisons (compile without fp8; the official fp8 path)
`--steps a,b` runs only those (in the order above).

  python bench/gpu_frontier.py --cpu-dry   # any CPU: every step's code path on the tiny models (tiny,
                                            # tiny23), 64x64x9 / 128x128x9, fp8 through an emulated matmul;
                                            # the fp8_scaled refusal checked; exit 1 if a step failed
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gpu_fullsize import engine_row, make_job, write_rows  # noqa: E402 - after the path insert

from ltx2_batch.config import CompileMode, ModelConfig, ModelSource, Quantization  # noqa: E402 - after the path insert
from ltx2_batch.core.families import ModelFamily  # noqa: E402 - after the path insert

GIB = 2**30
CAP_GIB = 80
FORWARD_REPEATS = 5
Size = tuple[str, int, int, int, bool]
DISTILLED: Size = ("distilled_768x512x121", 768, 512, 121, False)
TWO_STAGE: Size = ("two_stage_1536x1024x121", 1536, 1024, 121, True)
DRY_DISTILLED: Size = ("distilled_64x64x9", 64, 64, 9, False)
DRY_TWO_STAGE: Size = ("two_stage_128x128x9", 128, 128, 9, True)


@dataclass
class Context:
    args: argparse.Namespace
    dry: bool
    cuda: bool
    work: Path  # scratch: MP4s, the cold-start checkpoint set
    deadline: float
    probes: dict[str, Any] = field(default_factory=dict)  # reference forward per (family, size)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def size(self, two_stage: bool) -> Size:
        if self.dry:
            return DRY_TWO_STAGE if two_stage else DRY_DISTILLED
        return TWO_STAGE if two_stage else DISTILLED

    def model(self, family: ModelFamily, **changes: Any) -> ModelConfig:
        if self.dry:
            name = "tiny" if family is ModelFamily.ltx2 else "tiny23"
            cfg = ModelConfig(name=name, source=ModelSource.tiny, family=family, root=str(REPO / "models"))
            if family is ModelFamily.ltx23:  # the tiny23 set's own checkpoint name (conf/model/tiny23.yaml)
                cfg = dataclasses.replace(cfg, checkpoints=_preset_checkpoints("tiny23"))
        else:
            name = "ltx2_random" if family is ModelFamily.ltx2 else "ltx23_random"
            cfg = ModelConfig(name=name, source=ModelSource.random, family=family, root=str(REPO / "models"))
        return dataclasses.replace(cfg, **changes)

    def make_backend(self) -> Callable[[ModelConfig], Any] | None:
        """The dry run builds through the adapter with an emulated fp8 matmul (a CPU has no fp8 cores)."""
        return _dry_backend if self.dry else None


def _preset_checkpoints(name: str) -> list[str]:
    import yaml

    return list(
        yaml.safe_load((REPO / "ltx2_batch" / "conf" / "model" / f"{name}.yaml").read_text())["checkpoints"]
    )


def _dry_backend(cfg: ModelConfig) -> Any:
    from ltx2_batch.backends.device import choose_device_policy
    from ltx2_batch.backends.factory import adapter
    from ltx2_batch.backends.quantize import Fp8Kernel, TransformerPrep
    from ltx2_batch.backends.weights import weights_source

    plain = dataclasses.replace(cfg, quantization=Quantization.none)
    source = weights_source(plain, REPO)
    prep = TransformerPrep(cfg.quantization, cfg.compile, Fp8Kernel.emulated)
    return adapter()(
        files=source.resolve(allow_fp8=False),
        weights=source,
        policy=choose_device_policy(plain),
        transformer_prep=prep,
    )


# ----------------------------------------------------------------------------------------- forward probe
class _Captured(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised from a forward hook once one forward's inputs are held: the render is not needed further."""


def _clone(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _clone(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        )
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _transformer(backend: Any) -> Any:
    name = next(n for n in sorted(backend.cache.names()) if n.startswith("transformer:"))
    return backend.cache.get(name)


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _velocity(model: Any, inputs: tuple[Any, ...]) -> tuple[Any, Any]:
    import torch

    with torch.inference_mode():
        return model.velocity_model(*inputs)


def _time_forwards(model: Any, inputs: tuple[Any, ...], cuda: bool, repeats: int) -> float:
    import torch

    seconds = []
    with torch.inference_mode():
        for _ in range(repeats):
            _sync(cuda)
            t0 = time.perf_counter()
            model(*inputs)
            _sync(cuda)
            seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def _capture(backend: Any, job: Any) -> tuple[Any, ...]:
    """The inputs of the first transformer forward of `job` (cloned), without finishing the render."""
    from ltx2_batch.backends.base import RenderRequest

    model = _transformer(backend)
    held: list[tuple[Any, ...]] = []

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        names = ("video", "audio", "perturbations")
        held.append(tuple(_clone(kwargs[n]) if n in kwargs else _clone(args[i]) for i, n in enumerate(names)))
        raise _Captured

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        backend.render(RenderRequest(job=job))
    except _Captured:
        pass
    finally:
        handle.remove()
    if not held:
        raise RuntimeError("no transformer forward ran in the capture job")
    return held[0]


def _rel_error(out: Any, ref: Any) -> float | None:
    if out is None or ref is None:
        return None
    out, ref = out.float(), ref.float()
    return round(float((out - ref).norm() / ref.norm().clamp_min(1e-12)), 5)


def probe(ctx: Context, key: str, reference: bool, size: Size) -> Callable[[Any], dict[str, Any]]:
    """The `after` hook of a row: a reference row captures one forward's inputs and its velocity output; a
    compared row runs its own transformer on those inputs. Both time FORWARD_REPEATS forwards on them."""

    def after(backend: Any) -> dict[str, Any]:
        import torch

        model = _transformer(backend)
        if reference:
            _name, width, height, frames, two_stage = size
            inputs = _capture(backend, make_job(width, height, frames, two_stage, seed=99))
            ctx.probes[key] = {"inputs": inputs, "output": _velocity(model, inputs)}
            repeat = _velocity(model, inputs)  # the same forward twice: bf16's own run-to-run spread
            noise = _rel_error(repeat[0], ctx.probes[key]["output"][0])
        elif key not in ctx.probes:
            return {"forward_probe": f"no reference row for {key} ran first"}
        else:
            noise = None
        held = ctx.probes[key]
        out = _velocity(model, held["inputs"])
        result = {
            "forward_probe_s": round(
                _time_forwards(model, held["inputs"], ctx.cuda, ctx.args.forward_repeats), 4
            ),
            "video_velocity_rel_error_vs_bf16": None if reference else _rel_error(out[0], held["output"][0]),
            "audio_velocity_rel_error_vs_bf16": None if reference else _rel_error(out[1], held["output"][1]),
        }
        if reference:
            result["video_velocity_rel_error_repeat"] = noise
        if ctx.cuda:
            torch.cuda.synchronize()
        return result

    return after


# ------------------------------------------------------------------------------------------------ rows
def render_step(
    label: str,
    family: ModelFamily,
    two_stage: bool,
    warm_jobs: int,
    *,
    quantization: Quantization = Quantization.none,
    compile_mode: CompileMode = CompileMode.off,
    reference: bool = False,
    probe_forward: bool = True,
) -> Callable[[Context, float], dict[str, Any]]:
    def run(ctx: Context, seconds: float) -> dict[str, Any]:
        size = ctx.size(two_stage)
        cfg = ctx.model(family, quantization=quantization, compile=compile_mode)
        key = f"{family.value}:{size[0]}"
        after = probe(ctx, key, reference, size) if probe_forward else None
        warm = min(warm_jobs, 2) if ctx.dry else warm_jobs
        row = engine_row(
            label,
            cfg,
            size,
            warm,
            time.perf_counter() + seconds,
            ctx.work / "renders",
            make_backend=ctx.make_backend(),
            after=after,
        )
        if ctx.dry and quantization is Quantization.fp8_cast:
            row["dry_note"] = "fp8_cast needs CUDA: the dry run ran this row unquantized"
        return row

    return run


def compile_summary(rows: list[dict[str, Any]], compiled: str, plain: str) -> dict[str, Any]:
    """Compile seconds = first job with compile over the first job without (same quantization); the clips it
    takes to pay them back at the steady intervals measured."""
    by_label = {r.get("label"): r for r in rows}
    c, p = by_label.get(compiled), by_label.get(plain)
    if not c or not p or "steady_interval_s" not in c or "steady_interval_s" not in p:
        return {}
    overhead = c["first_job_s"] - p["first_job_s"]
    gain = p["steady_interval_s"] - c["steady_interval_s"]
    return {
        "compile_overhead_s": round(overhead, 2),
        "steady_gain_s_per_clip": round(gain, 3),
        "speedup_steady": round(p["steady_interval_s"] / c["steady_interval_s"], 3),
        "clips_to_pay_back_compile": round(overhead / gain, 1) if gain > 0 else None,
    }


# ------------------------------------------------------------------------------------------- cold start
def cold_start_step(ctx: Context, seconds: float) -> dict[str, Any]:  # noqa: ARG001 - the step signature
    """Write the set, drop it from the page cache, run a fresh child process to its first finished clip."""
    from cold_set import drop_from_page_cache, filesystem_of, write_cold_set

    root = ctx.work / "cold"
    root.parent.mkdir(parents=True, exist_ok=True)
    where = filesystem_of(root.parent)
    t0 = time.perf_counter()
    written = write_cold_set(root, dry=ctx.dry, text_encoder=ctx.args.cold_text_encoder)
    write_s = time.perf_counter() - t0
    dropped = drop_from_page_cache(root)
    size = ctx.size(False)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    report = ctx.work / "cold_child.json"
    launched = time.time()
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--cold-child",
        str(root),
        "--child-report",
        str(report),
        "--launched",
        repr(launched),
        "--child-size",
        json.dumps(size),
        *(["--cpu-dry"] if ctx.dry else []),
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=max(60, ctx.left()), check=False
    )
    wall = time.time() - launched
    row: dict[str, Any] = {
        "work_filesystem": where,
        **written,
        "write_s": round(write_s, 1),
        "write_gb_per_s": round(written["bytes_on_disk"] / 1e9 / write_s, 2),
        "page_cache": dropped,
        "child_wall_s": round(wall, 2),
        "child_exit": out.returncode,
    }
    if out.returncode != 0 or not report.is_file():
        row["error"] = (out.stderr or out.stdout)[-2000:]
        return row
    child = json.loads(report.read_text())
    row |= child
    if child.get("load_s"):
        row["load_gb_per_s"] = round(written["bytes_read_by_load"] / 1e9 / child["load_s"], 2)
    shutil.rmtree(root, ignore_errors=True)  # 45 GiB of a 64 GiB disk: free it for what follows
    return row


def cold_child(root: Path, report: Path, launched: float, size: Size, dry: bool) -> int:
    """A fresh process: import, build the backend from the files on disk, render one clip, write its MP4."""
    imported_at = time.time()
    from ltx2_batch.backends import compat

    compat.prepare()
    import torch
    from cold_set import cold_backend

    from ltx2_batch.core.outcome import WorkerIdentity
    from ltx2_batch.storage.layout import OutputLayout
    from ltx2_batch.worker.executor import JobExecutor, RunOutput
    from ltx2_batch.worker.job_files import JobFiles
    from ltx2_batch.worker.overlap import Overlap

    ready_at = time.time()
    backend = cold_backend(root, dry=dry)
    built_at = time.time()
    executor = JobExecutor(backend, WorkerIdentity("cold", "local"))
    files = RunOutput(JobFiles(OutputLayout(root.parent / "cold_out"), {}), overlap=Overlap.ENCODE)
    try:
        _name, width, height, frames, two_stage = size
        outcome = executor.submit(make_job(width, height, frames, two_stage, seed=1), files).result()
    finally:
        executor.shutdown()
    done_at = time.time()
    peak = torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else None
    result = {
        "status": outcome.status,
        "launch_to_first_clip_s": round(done_at - launched, 2),
        "python_start_s": round(imported_at - launched, 2),
        "imports_s": round(ready_at - imported_at, 2),
        "backend_create_s": round(built_at - ready_at, 2),
        "first_job_s": round(outcome.total_s, 2),
        "load_s": round(outcome.load_s, 2),
        "phases_s": {k: round(v, 3) for k, v in outcome.phases.items()},
        "peak_gpu_gib": None if peak is None else round(peak, 2),
        "mp4_bytes": Path(outcome.output_path).stat().st_size if outcome.output_path else None,
        "memory_policy": (backend.memory_plan.policy.value if backend.memory_plan else None),
    }
    if outcome.status != "done":
        result["error"] = (outcome.error or "")[-1500:]
    backend.close()
    report.write_text(json.dumps(result, indent=1))
    return 0 if outcome.status == "done" else 1


# --------------------------------------------------------------------------------------------- 80 GB plan
def plan_80gb_step(ctx: Context, seconds: float) -> dict[str, Any]:
    """Cap this process at CAP_GIB, run the plan the memory policy picks for that size, compare the peak."""
    import torch

    size = ctx.size(True)
    cfg = ctx.model(ModelFamily.ltx2)
    if not ctx.cuda:  # the CPU has no per-process cap: the same code path, planned on host memory
        row = engine_row(
            "plan_80gb",
            cfg,
            size,
            1,
            time.perf_counter() + seconds,
            ctx.work / "renders",
            make_backend=ctx.make_backend(),
        )
        return row | {"cap_gib": None}
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(CAP_GIB * GIB / total)
    try:
        row = engine_row("plan_80gb", cfg, size, 2, time.perf_counter() + seconds, ctx.work / "renders")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    peak = max(row.get("peak_gpu_gib") or 0, row.get("peak_reserved_gib") or 0)
    return row | {"cap_gib": CAP_GIB, "peak_under_cap": bool(peak and peak < CAP_GIB)}


# ----------------------------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class Step:
    name: str
    estimate_s: float  # on an H200, from the earlier runs (bench/gpu_frontier_plan.md)
    run: Callable[[Context, float], dict[str, Any]]


STEPS = (
    Step("ltx2_bf16", 35, render_step("ltx2_bf16", ModelFamily.ltx2, False, 3, reference=True)),
    Step(
        "ltx2_fp8_scaled",
        35,
        render_step("ltx2_fp8_scaled", ModelFamily.ltx2, False, 3, quantization=Quantization.fp8_scaled),
    ),
    Step(
        "ltx2_fp8_scaled_compiled",
        110,
        render_step(
            "ltx2_fp8_scaled_compiled",
            ModelFamily.ltx2,
            False,
            4,
            quantization=Quantization.fp8_scaled,
            compile_mode=CompileMode.blocks,
        ),
    ),
    Step("ltx23_bf16", 40, render_step("ltx23_bf16", ModelFamily.ltx23, False, 3, reference=True)),
    Step(
        "ltx23_fp8_scaled",
        40,
        render_step("ltx23_fp8_scaled", ModelFamily.ltx23, False, 3, quantization=Quantization.fp8_scaled),
    ),
    Step("cold_start", 150, cold_start_step),
    Step("plan_80gb", 70, plan_80gb_step),
    Step(
        "ltx23_bf16_two_stage",
        70,
        render_step("ltx23_bf16_two_stage", ModelFamily.ltx23, True, 2, probe_forward=False),
    ),
    Step(
        "ltx23_fp8_scaled_two_stage",
        65,
        render_step(
            "ltx23_fp8_scaled_two_stage",
            ModelFamily.ltx23,
            True,
            2,
            quantization=Quantization.fp8_scaled,
            probe_forward=False,
        ),
    ),
    Step(
        "ltx2_bf16_compiled",
        110,
        render_step(
            "ltx2_bf16_compiled",
            ModelFamily.ltx2,
            False,
            4,
            compile_mode=CompileMode.blocks,
            probe_forward=False,
        ),
    ),
    Step(
        "ltx2_fp8_cast",
        40,
        render_step("ltx2_fp8_cast", ModelFamily.ltx2, False, 3, quantization=Quantization.fp8_cast),
    ),
)


def refusal_check() -> dict[str, Any]:
    """On a machine without fp8 tensor cores, fp8_scaled is refused by the factory before any model work."""
    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.errors import ConfigError

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ModelConfig(root=str(Path(tmp) / "models"), quantization=Quantization.fp8_scaled)
        try:
            create_backend(cfg, REPO)
        except ConfigError as exc:
            built = (Path(tmp) / "models").exists()
            return {
                "row": "fp8_scaled refusal",
                "refused": True,
                "message": str(exc)[:300],
                "models_built": built,
            }
    return {"row": "fp8_scaled refusal", "refused": False}


def main() -> int:  # noqa: PLR0912, PLR0915 - the options and the step loop, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry", action="store_true", help="every step's code path on the tiny models")
    parser.add_argument("--budget-s", type=float, default=480.0, help="no step starts past this")
    parser.add_argument("--steps", default="", help="comma-separated step names (default: all, in order)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--forward-repeats", type=int, default=FORWARD_REPEATS)
    parser.add_argument(
        "--cold-text-encoder",
        choices=("disk", "generated"),
        default="disk",
        help="cold start: Gemma written to disk too, or generated on the GPU as in ltx2_random",
    )
    parser.add_argument("--cold-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-report", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--child-size", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child is not None:
        return cold_child(
            args.cold_child,
            args.child_report,
            args.launched,
            tuple(json.loads(args.child_size)),
            args.cpu_dry,
        )

    from ltx2_batch.backends import compat

    compat.prepare()
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_dry:
        print("no CUDA here: run with --cpu-dry for the CPU check of every step", file=sys.stderr)
        return 2
    started = time.perf_counter()
    header: dict[str, Any] = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "dry": args.cpu_dry,
    }
    if cuda:
        header["gpu_total_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 1)
        header["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        import torchao

        header["torchao"] = torchao.__version__
    except Exception as exc:  # the fp8 rows will say so; the bf16 ones still run
        header["torchao"] = f"not importable: {exc!r}"[:200]
    wanted = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(wanted) - {s.name for s in STEPS})
    if unknown:
        print(f"unknown --steps {unknown}; known: {[s.name for s in STEPS]}", file=sys.stderr)
        return 2
    steps = [s for s in STEPS if not wanted or s.name in wanted]
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-frontier-"))
    ctx = Context(args, args.cpu_dry, cuda, work, started + args.budget_s)
    ctx.rows.append(header)
    print(json.dumps(header), flush=True)
    if not cuda:
        ctx.rows.append(refusal_check())
        print(json.dumps(ctx.rows[-1]), flush=True)
    for index, step in enumerate(steps):
        estimate = step.estimate_s if not ctx.dry else 0.0
        if ctx.left() < estimate:
            row: dict[str, Any] = {
                "skipped": f"time budget: {ctx.left():.0f} s left, step needs ~{estimate:.0f} s"
            }
        else:
            t0 = time.perf_counter()
            # a row may use its estimate plus a fair share of the slack (what the later steps leave)
            later = sum(s.estimate_s for s in steps[index + 1 :]) if not ctx.dry else 0.0
            allowance = max(estimate, ctx.left() - later) if not ctx.dry else 3600.0
            try:
                row = step.run(ctx, allowance)
            except torch.OutOfMemoryError as exc:
                row = {"error": f"OOM: {str(exc)[:300]}"}
            except Exception as exc:  # one broken step must not cost the others their figures
                row = {"error": repr(exc)[:300], "traceback": traceback.format_exc()[-3000:]}
            row["step_s"] = round(time.perf_counter() - t0, 1)
            if cuda:
                torch.cuda.empty_cache()
        row = {"label": step.name, **row}
        ctx.rows.append(row)
        print(json.dumps(row), flush=True)
        write_rows(args.out, ctx.rows)
    summary = {
        "summary": True,
        "fp8_scaled_compile": compile_summary(ctx.rows, "ltx2_fp8_scaled_compiled", "ltx2_fp8_scaled"),
        "bf16_compile": compile_summary(ctx.rows, "ltx2_bf16_compiled", "ltx2_bf16"),
        "failed": [r["label"] for r in ctx.rows if "error" in r],
        "skipped": [r["label"] for r in ctx.rows if "skipped" in r],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    ctx.rows.append(summary)
    print(json.dumps(summary), flush=True)
    write_rows(args.out, ctx.rows)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
