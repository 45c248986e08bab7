"""The caches of one backend: built models by name (`ModelCache`) and text encodings (`PromptCache`).

Owns: holding every built module so a later job never reads a checkpoint again; evicting what the next
pipeline kind does not need (gc + the device's empty_cache) before building what it does, so a pipeline switch
never holds two transformer sets; parking large idle modules on the CPU when the device cannot hold them all
(which ones is the memory policy's choice, memory.py); and a bounded LRU of prompt encodings.
Must not: import ltx_core / ltx_pipelines (builders arrive as callables), choose devices (device.py).
Both caches belong to one backend instance and die with it; nothing here is process-global.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any


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
        """The names held now (the backend reads from them whether a transformer set is resident)."""
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
        """Bytes of parameters held, on the device or parked: what the backend reports about its memory."""
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
        """Collect garbage and hand the device's cached blocks back: freed modules make room for the next."""
        import torch

        gc.collect()
        kind = self.device.split(":")[0]
        if kind == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif kind == "mps":
            torch.mps.empty_cache()

    def clear(self) -> None:
        """Drop every module, `keep_always` ones too, and free their device memory (the backend closes)."""
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
        """The encoding under `key`; on a miss `make()` builds it, kept (LRU) unless capacity is 0."""
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
        """Forget every encoding: they must not outlive the text encoder that made them."""
        self._items.clear()
