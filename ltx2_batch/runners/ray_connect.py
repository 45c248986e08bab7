"""Joining a Ray cluster or starting a private one, quietly, from the driver.

Owns `connect` (join the cluster a run names, or start a private local Ray for it), how many render workers
a run wants (`worker_count`) and how each is placed (`placement`), and keeping Ray's own chatter off a
non-verbose console:
- `Started a local Ray instance.` / `Connecting to existing Ray cluster` (Ray's INFO logger lines),
- the driver's core worker's `logging.cc ... Set ray log level ...` line (it logs the variable that quiets
  it, so the variable is left out of the driver's environment while it starts),
- the coloured `(raylet) A worker died or was killed ...` lines that Ray's error listener thread prints to
  stdout for this job: dropped (logged at DEBUG); the failed job's own row and progress line still say why.
`verbose=true` shows all of it. A failed join says why in one line (cluster.py `ray_reason`).
Must not: start actors or choose jobs (runners/ray.py and the pool do).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

import ray

from ltx2_batch.config import EngineConfig
from ltx2_batch.errors import FatalBackendError
from ltx2_batch.runners.cluster import AddressKind, ClusterAddress, ray_reason, unreachable
from ltx2_batch.runners.pool_key import Placement

_log = logging.getLogger(__name__)
BACKEND_LOG_LEVEL = "RAY_BACKEND_LOG_LEVEL"


def connect(
    engine: EngineConfig, address: ClusterAddress, temp_dir: str | None = None, verbose: bool = False
) -> bool:
    """Join the cluster at `address` or, for a private address, start a local Ray. Returns True when this
    call initialised Ray (and so must shut it down).

    ray.init installs a C-level SIGTERM handler in the driver that aborts the process; the driver's own
    handler (stop dispatching, record cancellations, shut down cleanly) is put back afterwards.
    """
    if ray.is_initialized():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        started = _init(engine, address, temp_dir, verbose)
    except SystemExit as exc:
        # ray.init's own SIGTERM handler is `sys.exit(15)`: a SIGTERM during start-up lands here. Hand it
        # to the driver's handler instead (stop, cancel, exit 143) and report whatever Ray got to start.
        if exc.code != signal.SIGTERM or not callable(previous):
            raise
        signal.signal(signal.SIGTERM, previous)
        previous(signal.SIGTERM, None)
        return bool(ray.is_initialized())
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not verbose:
        mute_raylet_lines()
    return started


def _init(engine: EngineConfig, address: ClusterAddress, temp_dir: str | None, verbose: bool) -> bool:
    level = logging.INFO if verbose else logging.WARNING
    if address.kind is not AddressKind.private:
        problem = unreachable(address)
        if problem:
            raise FatalBackendError(problem)
        try:
            with quiet_start(verbose):
                ray.init(
                    address=address.text,
                    log_to_driver=False,
                    logging_level=level,
                    _node_ip_address=engine.node_ip_address,
                )
        except (ConnectionError, RuntimeError, TimeoutError) as exc:  # Ray's own words, without its traceback
            where = f"{address.text} (from {address.origin})"
            raise FatalBackendError(
                f"cannot join the Ray cluster at {where}: {ray_reason(str(exc))}"
            ) from None
        return True
    # Token auth would write ~/.ray/auth_token; a private local Ray does not need it.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with quiet_start(verbose):
        ray.init(
            num_cpus=engine.num_cpus,
            num_gpus=engine.num_gpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=level,
            _node_ip_address=engine.node_ip_address or "127.0.0.1",  # a private Ray: traffic on loopback
            _temp_dir=engine.temp_dir or temp_dir,  # the runner makes a short one (socket path limit)
        )
    return True


@contextlib.contextmanager
def quiet_start(verbose: bool) -> Iterator[None]:
    """Ray's start-up lines off the console: its Python logger at WARNING (the client builder logs before
    ray.init sets the level), and `RAY_BACKEND_LOG_LEVEL` out of the environment while the driver's core
    worker starts, since that core logs the variable itself (`logging.cc ... Set ray log level ...`) to a
    copy of stderr it took when Ray was imported. Workers get the variable through their runtime env."""
    if verbose:
        yield
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    level = os.environ.pop(BACKEND_LOG_LEVEL, None)
    try:
        yield
    finally:
        if level is not None:
            os.environ[BACKEND_LOG_LEVEL] = level


def mute_raylet_lines() -> None:
    """Drop the raylet's messages that Ray's error listener prints on the driver (a worker that died, in
    colour, straight to stdout). Ray offers no switch for that thread: its printing function, looked up by
    name on each message, is wrapped once (a private Ray function, so a missing one is left alone)."""
    worker_module: Any = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker_module, "print_to_stdstream", None)
    if original is None or getattr(original, "ltx2_quiet", False):
        return

    def quiet(data: dict[str, Any], ignore_prefix: bool) -> None:
        """Ray's printer, except that raylet messages go to the DEBUG log."""
        if data.get("pid") == "raylet":
            _log.debug("raylet: %s", " ".join(str(line) for line in data.get("lines", ())))
            return
        original(data, ignore_prefix)

    quiet.ltx2_quiet = True  # type: ignore[attr-defined]  # marks the wrapper: wrapped once per process
    worker_module.print_to_stdstream = quiet


def worker_count(engine: EngineConfig) -> int:
    """`engine.num_workers`, else one per GPU of the cluster (at least one)."""
    if engine.num_workers:
        return engine.num_workers
    gpus = int(ray.cluster_resources().get("GPU", 0) // max(engine.gpus_per_worker, 1e-9))
    return max(gpus, 1)


def placement(engine: EngineConfig) -> Placement:
    """What each render actor asks for: its GPUs only where the cluster has GPUs."""
    use_gpu = ray.cluster_resources().get("GPU", 0) > 0 and engine.gpus_per_worker > 0
    return Placement(num_gpus=engine.gpus_per_worker if use_gpu else 0.0, num_cpus=engine.cpus_per_worker)
