"""Process-level shims that let ltx-core/ltx-pipelines 1.0.0 run on this stack (CPU torch, tiny Gemma).

Owns three narrow fixes, each applied only when needed and each idempotent:
  1. torchaudio: PyPI's wheel links CUDA libraries; on a CPU torch `import torchaudio` raises OSError.
     ltx-core needs only pure-Python parts (MelSpectrogram, resample), so the compiled extension is stubbed
     out, and only when the normal import fails.
  2. `torch.cuda.synchronize()` (and `torch.random.fork_rng(devices=[cpu])` in Gemma's enhancer) is called
     unconditionally by the official helpers; on a CPU-only build it raises, so it becomes a no-op when (and
     only when) CUDA is unavailable.
  3. ltx-core hard-codes the Gemma-3 config in a process-wide constant, read whenever a Gemma text encoder
     (or its embeddings processor) is built. `gemma_config` points that instance at a folder's config.json
     for the length of a `with` block and then puts back what was there, so a tiny (or any) Gemma folder is
     described by its own file and several backends with different Gemma folders can share a process.
Must not: import ltx_core at module import time, touch os.environ, change behaviour on a working CUDA
stack, or leave the Gemma constant changed outside a `gemma_config` block.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_GEMMA_TOP_LEVEL_KEYS = (
    "boi_token_index",
    "eoi_token_index",
    "eos_token_id",
    "image_token_index",
    "mm_tokens_per_image",
)


def _fail_stub(message: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        """Replace the stubbed extension's function with one that raises `message` when called."""

        def wrapped(*_args: object, **_kwargs: object) -> None:
            """Raise: the compiled torchaudio extension this would need is not there."""
            raise RuntimeError(f"{func.__name__}: {message}")

        return wrapped

    return decorator


def ensure_torchaudio() -> str:
    """Import torchaudio; returns "native" or "pure-python" (extension stubbed). Safe to call repeatedly."""
    try:
        importlib.import_module("torchaudio")
        return "native"
    except OSError:
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
    ext = types.ModuleType("torchaudio._extension")
    ext._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
    ext._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]
    ext.fail_if_no_align = _fail_stub("torchaudio compiled extension unavailable")  # type: ignore[attr-defined]
    ext._load_lib = lambda _lib: False  # type: ignore[attr-defined]
    ext._check_cuda_version = lambda: None  # type: ignore[attr-defined]
    sys.modules["torchaudio._extension"] = ext
    importlib.import_module("torchaudio")
    return "pure-python"


def _no_sync(*_args: object, **_kwargs: object) -> None:
    """Stand-in for torch.cuda.synchronize on a machine without CUDA (nothing to wait for)."""


def prepare() -> dict[str, str]:
    """Apply shims 1 and 2. Call before importing ltx_core / ltx_pipelines. Idempotent."""
    info = {"torchaudio": ensure_torchaudio()}
    import torch

    if not torch.cuda.is_available():
        torch.cuda.synchronize = _no_sync
        info["cuda_synchronize"] = "no-op"
        if not getattr(torch.random.fork_rng, "_ltx2_batch_cpu_shim", False):
            torch.random.fork_rng = _cpu_fork_rng(torch.random.fork_rng)
        info["fork_rng"] = "cpu devices ignored"
    return info


def _cpu_fork_rng(real: Callable[..., Any]) -> Callable[..., Any]:
    """Gemma's prompt enhancer calls `fork_rng(devices=[model.device])`, which asks CUDA for the RNG state
    of a CPU device and fails on a CPU-only build; the CPU generator is forked anyway: drop the devices."""

    # torch's own signature: callers pass devices=..., dropped on purpose
    def fork_rng(devices: object = None, *args: object, **kwargs: object) -> Any:  # noqa: ARG001 - see above
        """torch's `fork_rng` with the devices dropped: only the CPU generator is forked."""
        return real([], *args, **kwargs)

    fork_rng._ltx2_batch_cpu_shim = True  # type: ignore[attr-defined]
    return fork_rng


def read_gemma_config(gemma_root: str | Path) -> dict[str, Any] | None:
    """`<gemma_root>/config.json` as a dict, or None when the folder has none (then the shipped 12B
    defaults describe it). Read once per backend: a `gemma_config` block only applies it."""
    path = Path(gemma_root) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


# One scope at a time in the process: two threads entering scopes of different backends would otherwise each
# restore the other's config. Re-entrant, so a build inside an encode (or a nested scope) does not deadlock.
_GEMMA_LOCK = threading.RLock()


@contextlib.contextmanager
def gemma_config(config: dict[str, Any] | None) -> Iterator[None]:
    """ltx-core's shared Gemma constant describes `config` (read_gemma_config's dict; None: the shipped 12B
    defaults) inside the block, and is what it was before after it, errors included.

    The instance is changed in place, never replaced: the text-encoder configurator and the embeddings
    feature extractor import it by name, so only its contents can be switched. Whatever builds or runs a
    Gemma text encoder (and its embeddings processor) runs inside such a block."""
    from ltx_core.text_encoders.gemma import config as gcfg

    target = gcfg.GEMMA3_CONFIG_FOR_LTX
    with _GEMMA_LOCK:
        saved = copy.deepcopy(target.__dict__)
        try:
            _describe(target, gcfg, config or {})
            yield
        finally:
            target.__dict__.clear()
            target.__dict__.update(saved)


def _describe(target: Any, gcfg: Any, cfg: dict[str, Any]) -> None:
    """Reset `target` to the shipped 12B defaults, then apply `cfg`'s keys (those the dataclasses know)."""
    target.__dict__.update(gcfg.Gemma3ConfigData().__dict__)
    for key in _GEMMA_TOP_LEVEL_KEYS:
        if key in cfg:
            setattr(target, key, cfg[key])
    for sub_name, sub in (("text_config", target.text_config), ("vision_config", target.vision_config)):
        for key, value in cfg.get(sub_name, {}).items():
            if key == "rope_scaling":
                if value:
                    sub.rope_scaling = gcfg.Gemma3RopeScaling(**value)
            elif hasattr(sub, key):
                setattr(sub, key, value)
