"""Builds a cold backend from a `ModelConfig`: the one way into the LTX adapter.

Owns the order of things that must happen before the official packages are imported (the compat shims:
torchaudio on a CPU torch, `torch.cuda.synchronize` without CUDA), then wiring the device policy, the weights
source and the memory figures into an `Ltx2Backend`; and refusing fp8 (and the quantization / compile
settings, quantize.py) where they cannot run, by name, before any file is read. Importing this module is
cheap: torch and the adapter are imported when a backend is made.
Must not: hold state, render, or be imported by the adapter (the adapter is below it).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ltx2_batch.backends.base import RenderBackend
from ltx2_batch.backends.device import choose_device_policy, device_free_bytes
from ltx2_batch.backends.fake import FakeBackend
from ltx2_batch.backends.models import fp8_variant
from ltx2_batch.backends.quantize import TransformerPrep, check_files, device_problems, setting_problems
from ltx2_batch.backends.weights import weights_source
from ltx2_batch.config import CompileMode, ModelConfig, ModelSource, Quantization
from ltx2_batch.core.library_logs import after_import
from ltx2_batch.errors import ConfigError

if TYPE_CHECKING:
    from ltx2_batch.backends.ltx2 import Ltx2Backend


def adapter() -> type[Ltx2Backend]:
    """The adapter class, imported after the shims it needs (idempotent)."""
    import torch  # noqa: F401 - first, alone: it resets its loggers as it loads, before the packages that log

    from ltx2_batch.backends import compat

    after_import()  # ... so the quiet policy is applied again before transformers, torchao and LTX load
    compat.prepare()
    from ltx2_batch.backends.ltx2 import Ltx2Backend

    return Ltx2Backend


def import_adapter_in_background() -> threading.Thread:
    """Start importing the adapter (torch, ltx_core, ltx_pipelines: seconds of CPU) on a daemon thread, so a
    local run's planning and those imports overlap; `adapter()` later finds the modules loaded (Python's
    import lock makes a second importer wait for the first). An import error resurfaces in `adapter()`."""
    thread = threading.Thread(target=_import_quietly, name="import-adapter", daemon=True)
    thread.start()
    return thread


def _import_quietly() -> None:
    with contextlib.suppress(Exception):  # reported where the adapter is really needed
        adapter()


def wants_fp8(cfg: ModelConfig) -> bool:
    """model.quantization=fp8_cast, or a checkpoint list made only of fp8 files (model=ltx2_fp8)."""
    names = [Path(n).name for n in cfg.checkpoints]
    fp8_files = bool(names) and all(fp8_variant(n) == n for n in names)
    return cfg.quantization is Quantization.fp8_cast or (fp8_files and cfg.quantization is Quantization.none)


def placement_problems(cfg: ModelConfig) -> list[str]:
    """What this machine cannot run of `cfg`'s settings, each with its fix, before any file is read (imports
    torch to see the device). The launch check asks it when the driver renders itself (engine=local), so
    `plan=true` refuses what the run would; a Ray worker asks it before it loads anything, and the first
    one's refusal stops the run once."""
    if cfg.source is ModelSource.fake or not _asks_the_device(cfg):
        return []
    problems = setting_problems(cfg)
    if problems:
        return problems
    try:
        policy = choose_device_policy(cfg)
    except ConfigError as exc:
        return [str(exc)]
    problems = device_problems(cfg, policy)
    if wants_fp8(cfg) and policy.kind != "cuda":
        if cfg.quantization is Quantization.fp8_cast:
            what, fix = "model.quantization=fp8_cast", "model.quantization=none (full precision)"
        else:
            what, fix = (
                f"model={cfg.name} (fp8 checkpoint files)",
                "a full-precision preset (model=ltx2_distilled)",
            )
        problems.append(
            f"{what} runs the fp8 transformer, which needs a CUDA GPU (fp8 weights, upcast matmuls); this "
            f"machine's device is {policy.device}: use {fix}, or run on a CUDA machine"
        )
    elif wants_fp8(cfg) and not policy.allow_fp8:
        problems.append(f"model={cfg.name} needs fp8 but model.allow_fp8=false: set model.allow_fp8=true")
    return problems


def _asks_the_device(cfg: ModelConfig) -> bool:
    """Whether any setting depends on what the device is (a named device, fp8, compile): only then is torch
    imported to look; the defaults run on whatever device there is."""
    asked = cfg.device != "auto" or cfg.quantization is not Quantization.none
    return asked or cfg.compile is not CompileMode.off or wants_fp8(cfg)


def create_backend(cfg: ModelConfig, project_root: Path) -> RenderBackend:
    """`model=fake`: the numpy stand-in (no torch, no files). Otherwise: resolve the files (building the tiny
    set, or the header-only random set, if needed), choose the device
    policy, return a cold backend. An fp8-only model on a device without CUDA is refused here, by name, and so
    is a quantization or compile setting this device cannot run."""
    if cfg.source is ModelSource.fake:
        return FakeBackend.from_config(cfg)
    problems = placement_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    policy = choose_device_policy(cfg)
    fp8 = wants_fp8(cfg)
    source = weights_source(cfg, Path(project_root))
    files = source.resolve(allow_fp8=policy.allow_fp8)
    prep = TransformerPrep(quantization=cfg.quantization, compile=cfg.compile)
    check_files(prep, files.is_fp8, str(files.checkpoint))
    return adapter()(
        files=files,
        weights=source,
        policy=policy,
        force_fp8=fp8,
        transformer_prep=prep,
        prompt_cache_size=cfg.prompt_cache_size,
        free_bytes=device_free_bytes(policy.device),
    )
