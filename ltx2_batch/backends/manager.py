"""The per-process model manager: device/dtype policy and the cache of built models (seed 8.2, made faster).

Owns: choosing the device (cuda > mps > cpu) and dtypes (bf16 on CUDA, float32 on CPU where bf16 convolutions
are ~60x slower, float32 on MPS where bf16 gives black frames and fp8 cannot run); holding every built module
so that a later job never reads a checkpoint again; evicting what the next pipeline kind does not need (gc +
the device's empty_cache) before building what it does; parking large idle modules on the CPU when the device
cannot hold them all (which ones: the memory policy, memory.py); the prompt-encoding LRU. `create_backend`
wires files, policy and cache into an `Ltx2Backend` and refuses fp8 where it cannot run.
Must not: import ltx_core / ltx_pipelines (builders are passed in as callables by ltx2.py), keep global state.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.errors import ConfigError

if TYPE_CHECKING:
    from ltx2_batch.backends.ltx2 import Ltx2Backend

_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "float32": "float32",
    "fp16": "float16",
    "float16": "float16",
}


@dataclass(frozen=True)
class DevicePolicy:
    """Where and in what precision models run. Plain strings so it can be logged and compared."""

    device: str  # "cuda" | "mps" | "cpu" (or "cuda:N")
    dtype: str  # torch dtype name for every model, e.g. "bfloat16"
    allow_fp8: bool

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]


def choose_device_policy(cfg: ModelConfig) -> DevicePolicy:
    """cuda > mps > cpu unless cfg.device names one; bf16 on CUDA, float32 elsewhere unless cfg.dtype says."""
    import torch

    if cfg.device == "auto":
        mps = getattr(torch.backends, "mps", None)
        device = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
    else:
        device = cfg.device
    kind = device.split(":")[0]
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if not available.get(kind, False):
        raise ConfigError(
            f"model.device={cfg.device!r} is not available in this worker (torch {torch.__version__}, "
            f"CUDA available: {available['cuda']}); use model.device=auto or one of "
            f"{sorted(k for k, ok in available.items() if ok)}"
        )
    if cfg.dtype == "auto":
        dtype = "bfloat16" if kind == "cuda" else "float32"
    elif cfg.dtype in _DTYPES:
        dtype = _DTYPES[cfg.dtype]
    else:
        raise ConfigError(f"model.dtype={cfg.dtype!r}: expected auto, bf16, fp16 or fp32")
    if kind == "mps":
        dtype = "float32"  # seed 8.8: bf16 matmuls fail and the bf16 VAE decodes black frames on MPS
    return DevicePolicy(device=device, dtype=dtype, allow_fp8=cfg.allow_fp8 and kind == "cuda")


class ModelCache:
    """Built modules by name, built at most once each while they are needed.

    `require(names)` makes exactly `names` (plus `keep_always`) resident: anything else is freed first (so a
    pipeline switch never holds two transformer sets at once), then missing ones are built by their builder.
    `builds` counts every builder call: a second job of the same kind must leave it unchanged.
    """

    def __init__(
        self, device: str, big: Callable[[str], bool] = lambda _n: False, keep_always: Iterable[str] = ()
    ) -> None:
        self.device = device
        self._modules: dict[str, Any] = {}
        self._is_big = big
        self._keep_always = frozenset(keep_always)
        self.builds: Counter[str] = Counter()
        self.offload = False  # set by the backend when the device cannot hold every big module at once

    def set_offload(self, flag: bool, big: Callable[[str], bool] | None = None) -> None:
        """Switch parking on or off, optionally with a new rule for what is big (the memory policy's choice).
        A module that stops being parkable (parking off, or no longer big) is brought back onto the device."""
        new_big = big or self._is_big
        if self.offload:
            for name, module in list(self._modules.items()):
                if self._is_big(name) and not (flag and new_big(name)):
                    self._modules[name] = module.to(self.device)
        self._is_big = new_big
        self.offload = flag

    def park(self, name: str) -> None:
        """Move `name` to the CPU now if it is parkable (e.g. the text encoder right after encoding)."""
        module = self._modules.get(name)
        if module is not None and self.offload and self._is_big(name) and _module_device(module) != "cpu":
            self._modules[name] = module.to("cpu")
            self.free_device_memory()

    def names(self) -> frozenset[str]:
        return frozenset(self._modules)

    def require(self, wanted: dict[str, Callable[[], Any]]) -> float:
        """Ensure every name in `wanted` is built; free the rest. Returns seconds spent (0.0 when warm)."""
        stale = [n for n in self._modules if n not in wanted and n not in self._keep_always]
        t0 = time.perf_counter()
        if stale:
            for name in stale:
                del self._modules[name]
            self.free_device_memory()
        missing = [n for n in wanted if n not in self._modules]
        for name in missing:
            if self.offload and self._is_big(name):
                self._park_big(except_name=None)
            self._modules[name] = wanted[name]()
            self.builds[name] += 1
            if self.offload and self._is_big(name):
                self._modules[name] = self._modules[name].to("cpu")
        return time.perf_counter() - t0 if (stale or missing) else 0.0

    def ensure(self, name: str, builder: Callable[[], Any]) -> Any:
        """Build `name` if it is not held yet (evicting nothing), then return it like `get`."""
        if name not in self._modules:
            self.require({**dict.fromkeys(self._modules, _never), name: builder})
        return self.get(name)

    def get(self, name: str) -> Any:
        """The module, moved onto the device first when big modules are parked on the CPU."""
        module = self._modules[name]
        if self.offload and self._is_big(name):
            self._park_big(except_name=name)
            module = module.to(self.device)
            self._modules[name] = module
        return module

    def resident_bytes(self) -> int:
        total = 0
        for module in self._modules.values():
            params = getattr(module, "parameters", None)
            if params is not None:
                total += sum(p.numel() * p.element_size() for p in params())
        return total

    def _park_big(self, except_name: str | None) -> None:
        moved = False
        for name, module in list(self._modules.items()):
            if name != except_name and self._is_big(name) and _module_device(module) != "cpu":
                self._modules[name] = module.to("cpu")
                moved = True
        if moved:
            self.free_device_memory()

    def free_device_memory(self) -> None:
        import torch

        gc.collect()
        kind = self.device.split(":")[0]
        if kind == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif kind == "mps":
            torch.mps.empty_cache()

    def clear(self) -> None:
        self._modules.clear()
        self.free_device_memory()


def _never() -> None:
    raise AssertionError("held modules are never rebuilt")


def _module_device(module: Any) -> str:
    params = getattr(module, "parameters", None)
    if params is None:
        return "cpu"
    first = next(iter(params()), None)
    return "cpu" if first is None else first.device.type


def device_memory_bytes(device: str) -> int | None:
    """Total memory of a CUDA device, None elsewhere (CPU and MPS share host memory)."""
    import torch

    if device.split(":")[0] != "cuda" or not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


def device_free_bytes(device: str) -> int | None:
    """Free memory of a CUDA device now (what the memory policy plans with); None for host memory."""
    import torch

    if device.split(":")[0] != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def wants_fp8(cfg: ModelConfig) -> bool:
    """model.fp8, or a checkpoint list made only of fp8 files (model=ltx2_fp8)."""
    from ltx2_batch.backends.models import fp8_variant

    names = [Path(n).name for n in cfg.checkpoints]
    return cfg.fp8 or (bool(names) and all(fp8_variant(n) == n for n in names))


def create_backend(cfg: ModelConfig, project_root: Path) -> Ltx2Backend:
    """Resolve files (building the tiny set, or the header-only random set, if needed), choose the device
    policy, return a cold backend. An fp8-only model on a device without CUDA is refused here, by name."""
    from ltx2_batch.backends.ltx2 import Ltx2Backend
    from ltx2_batch.backends.models import resolve_model_files

    policy = choose_device_policy(cfg)
    fp8 = wants_fp8(cfg)
    if fp8 and policy.kind != "cuda":
        raise ConfigError(
            f"model={cfg.name} runs the fp8 transformer, which needs a CUDA GPU (fp8 weights with upcast "
            f"matmuls); this worker's device is {policy.device}. Use model=ltx2_distilled (bf16) or a CUDA "
            "machine."
        )
    if fp8 and not policy.allow_fp8:
        raise ConfigError(f"model={cfg.name} needs fp8 but model.allow_fp8=false")
    if cfg.source is ModelSource.random:
        from ltx2_batch.backends.random_weights import random_model_files

        files = random_model_files(cfg, Path(project_root))
    else:
        files = resolve_model_files(
            cfg, Path(project_root), require=("checkpoint", "gemma_root"), allow_fp8=policy.allow_fp8
        )
    return Ltx2Backend(
        files=files,
        policy=policy,
        random_seed=cfg.seed if cfg.source is ModelSource.random else None,
        force_fp8=fp8,
        prompt_cache_size=cfg.prompt_cache_size,
        free_bytes=device_free_bytes(policy.device),
    )


class PromptCache:
    """A bounded LRU of text encodings by key (the text and what else decides its encoding).

    Seed sweeps share a prompt: it is encoded once. Owned by one backend and cleared with it (a model swap
    builds a new backend), so an encoding never outlives the text encoder that made it.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 0)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = make()
        if self.capacity:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
