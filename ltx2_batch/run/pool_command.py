"""`ltx2-batch pool up|status|down`: warm a named pool before the first launch, show it, end it.

Each command takes the settings a launch takes (`engine.pool=NAME`, `engine.address=...` or `$RAY_ADDRESS`,
and for `up` the model and `engine.num_workers`), joins the pool's Ray and acts through the pool's owner:
- `up`: the pool's workers for this model, started, their weights loaded for the pipeline a text-to-video
  job of this model runs (the same key a launch computes), then left warm; a local Ray is started first
  when there is no cluster (runners/local_ray.py);
- `status`: each worker (state, model and key, what it has loaded, node, GPUs, idle seconds, jobs served,
  pipeline builds, memory) of pool NAME, or of every pool without a name; pools of another code version are
  listed by name only;
- `down`: the pool's workers and owner, every code version of it; then, when nothing of this tool is left
  on it, the local Ray this tool started (its own process group only, never `ray stop`).
Must not: render or touch any output dir.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import ray

from ltx2_batch.backends.weights import model_fingerprint
from ltx2_batch.config import AppConfig, PoolCommand
from ltx2_batch.core.code_identity import code_hash
from ltx2_batch.core.families import auto_recipe
from ltx2_batch.core.library_logs import quiet_env
from ltx2_batch.errors import ConfigError, FatalBackendError
from ltx2_batch.run.planning import weights_offer
from ltx2_batch.run.session import worker_spec
from ltx2_batch.runners.cluster import AddressKind, cluster_address
from ltx2_batch.runners.local_ray import ensure_local_ray, running_local_ray, stop_local_ray
from ltx2_batch.runners.pool import (
    LOCAL_POOL_RAY,
    end_pool,
    local_address,
    open_owner,
    pool_actors,
    pool_address,
    pool_statuses,
)
from ltx2_batch.runners.pool_key import check_pool_name, worker_key
from ltx2_batch.runners.pool_owner import LaunchSpec, PoolView, WorkerRecipe
from ltx2_batch.runners.progress_sink import ProgressSink
from ltx2_batch.runners.ray_connect import connect, placement, worker_count

POLL_S = 0.2
COLUMNS = ("worker", "state", "launch", "model", "key", "warm", "node", "gpus", "idle_s", "jobs", "builds",
           "rss_mib", "gpu_mib")  # fmt: skip


def pool_command(app: AppConfig, root: Path) -> int:
    """Run `app.pool`; prints what it did; returns the exit code."""
    engine = app.engine
    if engine.pool is not None:
        check_pool_name(engine.pool)
    elif app.pool is not PoolCommand.status:
        raise ConfigError(f"`ltx2-batch pool {app.pool.value if app.pool else ''}` needs engine.pool=NAME")
    if app.pool is PoolCommand.up:
        print(_up(app, root))
        return 0
    address = pool_address(engine)
    if address is None and not ray.is_initialized():
        print("no pool: no cluster is named (engine.address, $RAY_ADDRESS) and no local pool Ray runs")
        return 0
    where = address.text if address is not None else "this Ray"
    started = address is not None and connect(engine, address, verbose=app.verbose)
    try:
        if app.pool is PoolCommand.status:
            print(format_statuses(pool_statuses(engine.pool, code_hash()), where or "", engine.pool))
            return 0
        on_local_ray = address is not None and address.origin == LOCAL_POOL_RAY
        print(_down(engine.pool or "", on_local_ray))
        return 0
    finally:
        if started:
            with contextlib.suppress(Exception):
                ray.shutdown()


def _down(pool: str, on_local_ray: bool) -> str:
    owners, workers = end_pool(pool)
    said = [f"pool {pool}: ended {workers} worker(s) and {owners} owner(s)"]
    if on_local_ray and not pool_actors():
        local = running_local_ray()
        ray.shutdown()
        if local is not None:
            stop_local_ray(local)
            said.append(f"stopped the local Ray this tool started ({local.address}): no pool is left on it")
    elif on_local_ray:
        said.append("the local Ray stays up: other pools run on it")
    return "\n".join(said)


def _up(app: AppConfig, root: Path) -> str:
    """Start and build the pool's workers for `app.model`, wait until they are ready, leave them warm."""
    engine = app.engine
    address = cluster_address(engine)
    if address.kind is AddressKind.private and not ray.is_initialized():
        local, _ = ensure_local_ray(engine)
        address = local_address(local.address)
    started = connect(engine, address, verbose=app.verbose)
    try:
        worker = worker_spec(app, root)
        code = code_hash()
        where = placement(engine)
        key = worker_key(worker.model, model_fingerprint(app.model, root), where, code)
        owner = open_owner(engine.pool or "", code, detached=True)
        sink = ray.remote(ProgressSink).options(num_cpus=0).remote()
        run_id = f"up-{uuid.uuid4().hex[:12]}"
        env = {"TQDM_DISABLE": "1", **quiet_env(app.verbose)}
        launch = LaunchSpec(
            run_id, key, WorkerRecipe(worker, where, env), app.output.overlap, publishes=False, sink=sink,
            idle_s=engine.pool_idle_s, keep_started=True,
        )  # fmt: skip
        want = worker_count(engine)
        view = _wait_ready(owner, ray.get(owner.attach.remote(launch, want)), run_id, engine.start_timeout_s)
        offer = weights_offer(app.model, root)
        pipeline = auto_recipe(offer.family, offer.kind).pipeline  # what a text-to-video job of it runs
        workers = [a.handle() for a in pool_actors(engine.pool) if f"/{key[:12]}/" in a.name]
        ray.get([worker.warm.remote(pipeline) for worker in workers])  # weights loaded, not only the backend
        ray.get(owner.detach.remote(run_id))
        ray.kill(sink)
        status = format_statuses(pool_statuses(engine.pool, code), address.text or "this Ray", engine.pool)
        return f"pool {engine.pool}: {view.ready} worker(s) of model={app.model.name} ready\n{status}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                ray.shutdown()


def _wait_ready(owner: Any, view: PoolView, run_id: str, timeout_s: float) -> PoolView:
    deadline = time.monotonic() + timeout_s
    while view.ready < view.workers:
        if view.refusal:
            raise FatalBackendError(f"render workers could not start: {view.refusal}")
        if time.monotonic() > deadline:
            raise FatalBackendError(
                f"{view.workers - view.ready} render worker(s) did not start within {timeout_s:.0f}s; lower "
                "engine.num_workers or raise engine.start_timeout_s"
            )
        time.sleep(POLL_S)  # polling the owner under a deadline
        view = ray.get(owner.view.remote(run_id))
    return view


def format_statuses(statuses: list[dict[str, Any]], where: str, pool: str | None) -> str:
    """One block per pool: a header line, then one row per worker, every cell one word."""
    if not statuses:
        return f"no pool {pool} on {where}" if pool else f"no pool on {where}"
    blocks = []
    for status in statuses:
        name, code = status["pool"], status["code"]
        if status.get("other_version"):
            count = status["worker_count"]
            blocks.append(
                f"pool {name} (code {code}): another version of ltx2-batch, {count} worker(s); never used by "
                "this version: it idles out, or `ltx2-batch pool down` ends it"
            )
            continue
        if "error" in status:
            blocks.append(f"pool {name} (code {code[:12]}): did not answer: {status['error']}")
            continue
        idle = "never" if status["idle_s"] is None else f"{status['idle_s']:.0f}s"
        head = (
            f"pool {name} on {where} (code {code[:12]}): idle timeout {idle}, {status['launches']} "
            f"launch(es) attached, {status['replaced']} worker(s) replaced"
        )
        rows = [COLUMNS] + [tuple(_cell(w.get(c)) for c in COLUMNS) for w in status["workers"]]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        table = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        refusals = [f"  {w['worker']}: {w['refusal']}" for w in status["workers"] if w.get("refusal")]
        blocks.append("\n".join([head, *table, *refusals]))
    return "\n\n".join(blocks)


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace(" ", "_")
