"""Warm pools from a driver's side: where a pool lives, its owner, its actors, and ending it.

Shared by a launch (runners/ray.py) and the pool commands (run/pool_command.py):
- `pool_address`: a named pool lives on the cluster the run names (`engine.address`, `$RAY_ADDRESS`), else on
  the local Ray this tool started for pools (runners/local_ray.py);
- `open_owner`: the pool's owner for this code version, found by name or created (atomically: two launches
  that start a pool at once get one owner); detached for a named pool, owned by the launch for a private one;
- `pool_actors` / `end_pool` / `pool_statuses`: the tool's named actors in its own namespace, read from their
  names (pool_key.py), so a pool of another code version is listed and ended too, and asked nothing beyond
  the calls every version keeps (`down`, `retire_idle`: an upgraded tool's launch on a full cluster has the
  old version's idle workers end, `make_room_from_other_versions`).
Must not: lease or render (the owner leases, runners/pool_owner.py; the runner dispatches).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ltx2_batch.config import EngineConfig
from ltx2_batch.runners.cluster import AddressKind, ClusterAddress, cluster_address
from ltx2_batch.runners.local_ray import running_local_ray
from ltx2_batch.runners.pool_key import NAMESPACE, ActorName, Placement, owner_name, parse_actor_name
from ltx2_batch.runners.pool_owner import PoolOwner

DOWN_TIMEOUT_S = 30.0
STATUS_TIMEOUT_S = 20.0
LOCAL_POOL_RAY = "the local Ray this tool started for pools"
HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray gives the head node this resource, and no other node


def pool_address(engine: EngineConfig) -> ClusterAddress | None:
    """The cluster a run names; else the local pool Ray when one runs; else None."""
    address = cluster_address(engine)
    if address.kind is not AddressKind.private:
        return address
    local = running_local_ray()
    return None if local is None else local_address(local.address)


def local_address(text: str) -> ClusterAddress:
    """The address of the local pool Ray (host:port of its GCS)."""
    host, _, port = text.rpartition(":")
    return ClusterAddress(AddressKind.gcs, text, LOCAL_POOL_RAY, host, int(port))


def open_owner(pool: str, code: str, detached: bool) -> Any:
    """The owner of `pool` for this code version: found by name, or created. It is placed where it lives as
    long as what it serves: a shared pool's on the head node (a render node may go away, and the owner with it
    would end the pool for every launch), a launch's private one on the driver's node."""
    options: dict[str, Any] = {
        "name": owner_name(pool, code),
        "namespace": NAMESPACE,
        "get_if_exists": True,
        "num_cpus": 0,
        "max_restarts": 0,
        "max_concurrency": 1000,  # every launch's waiting `lease` calls, and the workers' reports
    }
    if detached:
        options["lifetime"] = "detached"
        options["resources"] = {HEAD_NODE_RESOURCE: 0.001}
    else:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False
        )
    return ray.remote(PoolOwner).options(**options).remote(pool, code, detached)


@dataclass(frozen=True)
class NamedActor:
    """One of this tool's named actors: its Ray name and what the name says (pool, code, worker)."""

    name: str
    parsed: ActorName

    def handle(self) -> Any:
        """The actor's handle, looked up by name in the tool's namespace."""
        return ray.get_actor(self.name, namespace=NAMESPACE)


def pool_actors(pool: str | None = None) -> list[NamedActor]:
    """This tool's live named actors (of pool `pool`, or of every pool), owners first."""
    found = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry.get("namespace") != NAMESPACE:
            continue
        parsed = parse_actor_name(entry["name"])
        if parsed is not None and (pool is None or parsed.pool == pool):
            found.append(NamedActor(entry["name"], parsed))
    return sorted(found, key=lambda actor: (actor.parsed.pool, actor.parsed.worker is not None, actor.name))


def end_pool(pool: str) -> tuple[int, int]:
    """End pool `pool`, every code version of it: each owner ends its workers (so none is replaced), then the
    owner goes, then any actor of the pool still named (an owner that did not answer). Returns (owners,
    workers) ended."""
    actors = pool_actors(pool)
    owners = [actor for actor in actors if actor.parsed.worker is None]
    for owner in owners:
        with contextlib.suppress(Exception):  # an owner that cannot answer is killed below all the same
            handle = owner.handle()
            ray.get(handle.down.remote(), timeout=DOWN_TIMEOUT_S)
    for actor in pool_actors(pool):
        with contextlib.suppress(Exception):  # gone meanwhile
            ray.kill(actor.handle(), no_restart=True)
    return len(owners), sum(actor.parsed.worker is not None for actor in actors)


def make_room_from_other_versions(pool: str, code: str, need: Placement) -> int:
    """When the cluster lacks `need` and the same pool has owners of other code versions (an upgraded tool),
    ask them to end their idle workers: this version never uses them. Returns how many ended."""
    free = ray.available_resources()
    if free.get("GPU", 0.0) >= need.num_gpus and free.get("CPU", 0.0) >= need.num_cpus:
        return 0
    ended = 0
    for owner in pool_actors(pool):
        if owner.parsed.worker is None and not code.startswith(owner.parsed.code):
            with contextlib.suppress(Exception):  # an owner without this call, or gone meanwhile
                ended += int(ray.get(owner.handle().retire_idle.remote(), timeout=DOWN_TIMEOUT_S))
    return ended


def pool_statuses(pool: str | None, code: str) -> list[dict[str, Any]]:
    """Each owner's status (of pool `pool`, or all): an owner of this code version answers in full; one of
    another version is only named, with how many workers it has (its interface may differ from ours)."""
    statuses = []
    actors = pool_actors(pool)
    for owner in (actor for actor in actors if actor.parsed.worker is None):
        workers = sum(a.parsed.worker is not None and a.name.startswith(owner.name + "/") for a in actors)
        if not code.startswith(owner.parsed.code):
            statuses.append({"pool": owner.parsed.pool, "code": owner.parsed.code, "other_version": True,
                             "worker_count": workers})  # fmt: skip
            continue
        try:
            statuses.append(ray.get(owner.handle().status.remote(), timeout=STATUS_TIMEOUT_S))
        except Exception as exc:  # a pool that cannot answer is reported, not fatal
            statuses.append({"pool": owner.parsed.pool, "code": owner.parsed.code, "error": str(exc)[:200]})
    return statuses
