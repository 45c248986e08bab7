"""A warm pool's one owner: the async Ray actor that starts, leases, replaces and retires its render workers.

One owner per pool and code version (pool_key.py names it), created by the first launch that asks and found
by name by every later one. Every decision is the book's (leases.py, pure); this actor acts on it:
- `attach` a launch (its key, how its workers are made, its progress sink as a sign of life), starting the
  workers it wants that the pool lacks; idle workers of other weights are retired first only when the
  cluster has no room for the new ones;
- `lease` waits for a free slot of the launch's key (first asked, first served) and returns the worker's
  handle; the worker's own `released` call ends the lease when its render returns; `give_back` ends a
  lease the launch had no job for;
- a worker's death (its `lifeline` call fails) is seen here, once, and the worker replaced once, here (the
  drivers that lose a render only retry it); a worker that dies before it is ready counts against its key,
  and three such deaths refuse the key (a crash loop is reported, not repeated);
- housekeeping: idle workers retire after `idle_s` (so GPUs free themselves), launches whose sink is gone
  (their driver died) are detached, and a detached owner with no worker and no launch for `idle_s` ends.
Kept the same across code versions (another version's driver calls them, pool.py): `down`, `retire_idle`,
`code`, and the `pool`/`code` entries of `status`; everything else may change with the code.
Must not: render, choose jobs, or write anything (drivers record; workers render).
Just over 400 lines: one actor's state and its handlers, which Ray cannot split across objects (the rules
themselves are leases.py's).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import ray

from ltx2_batch.config import OverlapMode
from ltx2_batch.core.scheduler import AffinityKey
from ltx2_batch.runners.leases import Grant, LeaseBook, WorkerState, lease_worker, status_row
from ltx2_batch.runners.pool_key import NAMESPACE, Placement, worker_name
from ltx2_batch.runners.render_worker import RenderWorker
from ltx2_batch.worker.spec import WorkerSpec

HOUSEKEEPING_S = 0.5
LIVENESS_S = 5.0  # how often launches are checked for a live sink
STATS_TIMEOUT_S = 5.0
START_FAILURES = 3  # deaths before ready that refuse a key
WORKER_CONCURRENCY = 8  # two renders (overlap), cancel, stats, lifeline, where: never starved


@dataclass(frozen=True)
class WorkerRecipe:
    """How a key's workers are made (and remade after a death)."""

    spec: WorkerSpec
    placement: Placement
    env: dict[str, str]


@dataclass(frozen=True)
class LaunchSpec:
    """What a launch tells the owner when it attaches."""

    run_id: str
    key: str
    recipe: WorkerRecipe
    overlap: OverlapMode
    publishes: bool  # its run dir is a bucket: the worker uploads one job beside the next render
    sink: Any  # its ProgressSink handle: gone with the driver
    idle_s: float | None  # the pool's idle timeout from now on (the latest launch's setting)
    keep_started: bool  # False: the workers it started retire when it detaches (the pool as it found it)


@dataclass(frozen=True)
class PoolView:
    """What a launch learns of the pool for its key."""

    workers: int  # starting or ready
    ready: int
    slots: int  # jobs the launch can have in flight at once (LeaseBook.slots)
    refusal: str | None
    other_keys: int  # workers holding other weights (or another placement)


@dataclass(frozen=True)
class Leased:
    """A granted slot with the worker's handle, as the driver receives it."""

    lease: str
    worker: str
    warm: AffinityKey | None
    handle: Any
    slots: int  # the launch's slots now (workers may have become ready since it last asked)


class PoolOwner:
    """Ray actor body (async: many launches wait on `lease` at once)."""

    def __init__(self, pool: str, code: str, detached: bool) -> None:
        self._pool, self._code, self._detached = pool, code, detached
        self._book = LeaseBook()
        self._handles: dict[str, Any] = {}
        self._recipes: dict[str, WorkerRecipe] = {}
        self._launches: dict[str, LaunchSpec] = {}
        self._waiters: deque[tuple[str, asyncio.Future[Leased | str | None]]] = deque()
        self._failed: dict[str, str] = {}  # key -> why its workers keep dying before they are ready
        self._start_deaths: Counter[str] = Counter()
        self._idle_s: float | None = None
        self._next_index = 0
        self.replaced = 0
        self._closing = False
        self._empty_since = time.monotonic()
        self._housekeeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # watchers, kept referenced until they end
        self._forever = asyncio.Event()

    # launches -------------------------------------------------------------------------------------------

    async def attach(self, launch: LaunchSpec, want: int) -> PoolView:
        """Attach a launch; start the workers its key lacks (up to `want`). Refused keys are tried again."""
        self._wake()
        self._recipes[launch.key] = launch.recipe
        self._idle_s = launch.idle_s
        self._launches[launch.run_id] = launch
        self._book.attach(launch.run_id, launch.key, launch.overlap, launch.publishes)
        self._failed.pop(launch.key, None)  # a new launch tries again what an earlier one could not start
        self._start_deaths.pop(launch.key, None)
        self._grow(launch.key, launch.run_id, want)
        return self._view(launch.run_id)

    async def grow(self, run_id: str, want: int) -> PoolView | None:
        """Top the launch's key up to `want` workers (more jobs arrived than the pool had workers for)."""
        launch = self._launches.get(run_id)
        if launch is None:
            return None
        self._grow(launch.key, run_id, want)
        return self._view(launch.run_id)

    async def view(self, run_id: str) -> PoolView | None:
        """The pool as the launch sees it now; None when the launch is not attached."""
        launch = self._launches.get(run_id)
        return None if launch is None else self._view(run_id)

    async def detach(self, run_id: str) -> None:
        """The launch ended: its waiting asks are answered None, its leases end; the workers it started
        retire unless it keeps them (`engine.pool_grow`)."""
        launch = self._launches.pop(run_id, None)
        for waiting, future in self._waiters:
            if waiting == run_id and not future.done():
                future.set_result(None)
        self._book.detach(run_id, time.monotonic())
        if launch is not None and not launch.keep_started:
            for name in self._book.retire_after(run_id):
                self._retire(name)
        self._book.forget_refused(run_id)
        self._serve()

    # leases ---------------------------------------------------------------------------------------------

    async def lease(self, run_id: str) -> Leased | str | None:
        """A slot of a ready worker of the launch's key, as soon as one is free; a string when the key
        cannot be served (why); None when the launch is detached (or the pool is going down)."""
        launch = self._launches.get(run_id)
        if launch is None or self._closing:
            return None
        refusal = self._refusal(launch.key)
        if refusal is not None:
            return refusal
        grant = self._book.grant(run_id)
        if grant is not None:
            return self._leased(grant, run_id)
        future: asyncio.Future[Leased | str | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((run_id, future))
        return await future

    async def give_back(self, lease: str) -> None:
        """End a lease the launch had no job for; its slot goes to the next ask."""
        self._end_lease(lease, None, served=False)

    async def released(self, lease: str, warm: AffinityKey | None, served: bool) -> None:
        """From a worker: its render under `lease` returned."""
        self._end_lease(lease, warm, served)

    def _end_lease(self, lease: str, warm: AffinityKey | None, served: bool) -> None:
        worker = self._book.release(lease, warm, served, time.monotonic())
        if worker is not None and worker.retiring and not worker.leases:
            self._retire(worker.name)
        self._serve()

    def _serve(self) -> None:
        """Hand free slots to waiting asks, in the order they came."""
        waiting: deque[tuple[str, asyncio.Future[Leased | str | None]]] = deque()
        while self._waiters:
            run_id, future = self._waiters.popleft()
            if future.done():
                continue
            launch = self._launches.get(run_id)
            if launch is None:
                future.set_result(None)
                continue
            refusal = self._refusal(launch.key)
            grant = None if refusal is not None else self._book.grant(run_id)
            if refusal is not None:
                future.set_result(refusal)
            elif grant is not None:
                future.set_result(self._leased(grant, run_id))
            else:
                waiting.append((run_id, future))
        self._waiters = waiting

    def _leased(self, grant: Grant, run_id: str) -> Leased:
        handle = self._handles[lease_worker(grant.lease)]
        return Leased(grant.lease, grant.worker, grant.warm, handle, self._book.slots(run_id))

    def _refusal(self, key: str) -> str | None:
        return self._failed.get(key) or self._book.refusal(key)

    def _view(self, run_id: str) -> PoolView:
        key = self._launches[run_id].key
        mine = self._book.of_key(key)
        ready = sum(w.state is WorkerState.ready for w in mine)
        others = sum(w.key != key for w in self._book.workers.values())
        return PoolView(len(mine), ready, self._book.slots(run_id), self._refusal(key), others)

    # workers --------------------------------------------------------------------------------------------

    def _grow(self, key: str, run_id: str, want: int) -> None:
        missing = want - len(self._book.of_key(key))
        if missing <= 0 or self._closing:
            return
        self._make_room(key, missing)
        for _ in range(missing):
            self._start(key, run_id)

    def _make_room(self, key: str, count: int) -> None:
        """Retire idle workers of other keys, longest idle first, while the cluster lacks the GPUs or CPUs
        `count` new workers of `key` ask for (a pool switching models on a one-GPU box)."""
        placement = self._recipes[key].placement
        free = ray.available_resources()
        gpus, cpus = free.get("GPU", 0.0), free.get("CPU", 0.0)
        for worker in self._book.idle_of_other_keys(key):
            if gpus >= count * placement.num_gpus and cpus >= count * placement.num_cpus:
                return
            theirs = self._recipes[worker.key].placement
            gpus, cpus = gpus + theirs.num_gpus, cpus + theirs.num_cpus
            self._retire(worker.name)

    def _start(self, key: str, started_by: str) -> None:
        recipe = self._recipes[key]
        index, self._next_index = self._next_index, self._next_index + 1
        display = f"ray-{index}"
        options: dict[str, Any] = {
            "name": worker_name(self._pool, self._code, key, index),
            "namespace": NAMESPACE,
            "num_gpus": recipe.placement.num_gpus,
            "num_cpus": recipe.placement.num_cpus,
            "max_restarts": 0,  # the owner replaces a dead worker itself, once, and drivers retry its job
            "max_concurrency": WORKER_CONCURRENCY,
            "runtime_env": {"env_vars": recipe.env},
        }
        if self._detached:
            options["lifetime"] = "detached"
        me = ray.get_runtime_context().current_actor
        handle = (
            ray.remote(RenderWorker)
            .options(**options)
            .remote(recipe.spec, display, me, self._code, self._detached)
        )
        self._handles[display] = handle
        self._book.add_worker(display, key, index, started_by, time.monotonic())
        self._spawn(self._watch(display, key, handle))

    async def _watch(self, name: str, key: str, handle: Any) -> None:
        """Ready (or refused), then wait on its lifeline until it dies."""
        try:
            info = await handle.where.remote()
        except ray.exceptions.RayError as exc:
            self._died(name, key, exc)
            return
        if "refusal" in info:
            self._book.refuse(name, info["refusal"])
            self._handles.pop(name, None)
            ray.kill(handle, no_restart=True)  # frees its GPU; the book keeps why until its launch detaches
            self._serve()
            return
        self._book.ready(name, bool(info.get("cuda")), info, time.monotonic())
        self._start_deaths.pop(key, None)
        self._serve()
        try:
            await handle.lifeline.remote()
        except ray.exceptions.RayError as exc:
            self._died(name, key, exc)

    def _died(self, name: str, key: str, exc: Exception) -> None:
        entry = self._book.remove(name)
        self._handles.pop(name, None)
        if entry is None or self._closing:
            return  # retired or refused here, or the pool is going down: nothing to replace
        if entry.state is WorkerState.starting:
            self._start_deaths[key] += 1
            if self._start_deaths[key] >= START_FAILURES:
                why = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
                self._failed[key] = f"render workers died while starting, {START_FAILURES} times; last: {why}"
                self._serve()
                return
        self.replaced += 1
        self._start(key, entry.started_by)  # replaced once, by the owner, whoever noticed the death first

    def _retire(self, name: str) -> None:
        self._book.remove(name)
        handle = self._handles.pop(name, None)
        if handle is not None:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)

    # housekeeping ---------------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._housekeeper is None:
            self._housekeeper = asyncio.get_running_loop().create_task(self._housekeeping())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _housekeeping(self) -> None:
        checked = time.monotonic()
        while not self._closing:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = time.monotonic()
            for name in self._book.due_to_retire(now, self._idle_s):
                self._retire(name)
            if now - checked >= LIVENESS_S:
                checked = now
                await self._detach_the_dead()
            if self._book.workers or self._launches:
                self._empty_since = now
            elif self._detached and self._idle_s is not None and now - self._empty_since >= self._idle_s:
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)  # the pool idled out

    async def _detach_the_dead(self) -> None:
        """A launch whose driver died (its sink is gone, a kill -9 or a lost node) holds nothing: its renders
        are cancelled at their next step (they would keep a warm worker busy for nobody, and publish files
        a rerun renders again) and it is detached."""
        launches = list(self._launches.values())
        answers = await asyncio.gather(
            *(launch.sink.ping.remote() for launch in launches), return_exceptions=True
        )
        for launch, answer in zip(launches, answers, strict=True):
            if isinstance(answer, ray.exceptions.RayActorError):
                for name in self._book.holding(launch.run_id):
                    handle = self._handles.get(name)
                    if handle is not None:
                        handle.cancel.remote(launch.run_id)
                await self.detach(launch.run_id)

    # status and shutdown --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The pool as `pool status` shows it: each worker's state, holdings, idle time, jobs and memory."""
        workers = list(self._book.workers.values())
        stats = await asyncio.gather(*(self._stats(w.name) for w in workers))
        models = {key: recipe.spec.model.name for key, recipe in self._recipes.items()}
        rows = [
            {**status_row(worker, models.get(worker.key, "?"), time.monotonic()), **extra}
            for worker, extra in zip(workers, stats, strict=True)
        ]
        return {
            "pool": self._pool,
            "code": self._code,
            "detached": self._detached,
            "idle_s": self._idle_s,
            "launches": len(self._launches),
            "replaced": self.replaced,
            "workers": rows,
        }

    async def _stats(self, name: str) -> dict[str, Any]:
        handle = self._handles.get(name)
        if handle is None:
            return {}
        try:
            return dict(
                await asyncio.wait_for(asyncio.wrap_future(handle.stats.remote().future()), STATS_TIMEOUT_S)
            )
        except (asyncio.TimeoutError, ray.exceptions.RayError):
            return {}

    async def down(self) -> int:
        """End every worker (none is replaced); waiting asks are answered None. Returns how many ended. The
        caller then kills this actor."""
        self._closing = True
        for _, future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()
        names = list(self._book.workers)
        for name in names:
            self._retire(name)
        return len(names)

    async def retire_idle(self) -> int:
        """End every worker that holds no lease (a launch of another code version needs their resources).
        Returns how many ended."""
        idle = [
            w.name
            for w in self._book.workers.values()
            if not w.leases and w.state is not WorkerState.starting
        ]
        for name in idle:
            self._retire(name)
        return len(idle)

    async def lifeline(self) -> None:
        """Returns only with this actor's death: detached workers watch it and end with their owner."""
        await self._forever.wait()

    async def code(self) -> str:
        """The code hash this owner serves; every code version keeps this call, for other versions."""
        return self._code
