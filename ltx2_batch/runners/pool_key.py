"""Names and keys of a warm pool's Ray actors: which actor may serve which launch.

A pool is a set of detached, named actors in the tool's own Ray namespace (`ltx2_batch`), one owner per pool
and per code version, and the render workers that owner started. A worker serves a launch only when its
key is the launch's: the key is a hash of
- the weights it holds: every model setting a worker builds from (family, source, files and their models
  root, checkpoint kind, dtype, device, fp8, quantization, compile, seed, prompt cache) plus the weights'
  fingerprint (file names and headers, backends/weights.py), so a re-downloaded checkpoint is another key;
- where it was placed (GPUs and CPUs per worker: a CPU actor on a GPU node renders on the CPU);
- the tool's code (core/code_identity.py), which is also in the owner's name: a launch of another version
  of the tool never talks to this owner, let alone its workers.
Per-job LoRAs and pipeline kinds are not in the key: a warm worker switches those itself, and the driver
routes jobs by affinity (core/scheduler.py) as before.
Must not: import Ray, touch files, or decide anything about leases (leases.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

from ltx2_batch.config import ModelConfig
from ltx2_batch.core.jobs import canonical_json
from ltx2_batch.errors import ConfigError

NAMESPACE = "ltx2_batch"  # named actors of this tool live here, apart from every other Ray user's
POOL_PREFIX = "pool/"
_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHORT = 12
# Settings that do not change what a worker loads: a download hint, and a removed flag (refused anyway).
_NOT_WEIGHTS = frozenset({"hf_repo", "fp8"})


@dataclass(frozen=True)
class Placement:
    """What each render actor asks Ray for."""

    num_gpus: float
    num_cpus: float


def check_pool_name(name: str) -> None:
    """A pool name is part of Ray actor names: letters, digits, `_`, `.`, `-`, at most 64 characters."""
    if not _POOL_NAME.match(name):
        raise ConfigError(
            f"engine.pool={name!r}: a pool name is 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit (e.g. engine.pool=sweeps)"
        )


def weights_identity(model: ModelConfig, fingerprint: str) -> dict[str, object]:
    """Everything about the model a worker builds from (the root already settled by the driver)."""
    fields = {k: v for k, v in dataclasses.asdict(model).items() if k not in _NOT_WEIGHTS}
    return {"model": fields, "fingerprint": fingerprint}


def worker_key(model: ModelConfig, fingerprint: str, placement: Placement, code: str) -> str:
    """The key a worker is found by: equal keys hold the same weights, placed alike, running the same code."""
    payload = {
        "weights": weights_identity(model, fingerprint),
        "placement": dataclasses.asdict(placement),
        "code": code,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def owner_name(pool: str, code: str) -> str:
    """The owner actor of pool `pool` for one version of the tool's code."""
    return f"{POOL_PREFIX}{pool}@{code[:_SHORT]}"


def worker_name(pool: str, code: str, key: str, index: int) -> str:
    """A render worker's Ray name (unique in the namespace); its display name is `ray-<index>`."""
    return f"{owner_name(pool, code)}/{key[:_SHORT]}/ray-{index}"


def private_pool(run_id: str) -> str:
    """The pool name of a launch without `engine.pool`: its own, ended with it."""
    return f"run-{run_id[:_SHORT]}"


@dataclass(frozen=True)
class ActorName:
    """A named actor of this tool, read back from its name."""

    pool: str
    code: str  # the first characters of the code hash
    worker: str | None  # the display name (`ray-3`), None for the pool's owner


def parse_actor_name(name: str) -> ActorName | None:
    """The pool, code and worker an actor name stands for; None for a name this module did not make."""
    if not name.startswith(POOL_PREFIX) or "@" not in name:
        return None
    pool, _, rest = name.removeprefix(POOL_PREFIX).partition("@")
    match rest.split("/"):
        case [code]:
            return ActorName(pool, code, None)
        case [code, _key, worker]:
            return ActorName(pool, code, worker)
    return None
