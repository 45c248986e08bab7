"""`engine=ray`: render on a pool of warm Ray actors, fed from the driver's queue one leased slot at a time.

Every launch renders through a pool (pool_owner.py, leases.py): `engine.pool=NAME` joins or starts a named
pool that outlives the launch (on the cluster named, else on a local Ray this tool starts: local_ray.py);
without it the launch has a private pool of its own, ended with it. The driver:
- attaches to the pool's owner (its key: weights, placement, code), which starts the workers it lacks;
- keeps asks for leases outstanding, one per job it could start, and sends each granted slot the job that
  best matches what that worker has loaded (affinity), so a slot is never idle while this launch has jobs
  (the next batch is pulled before the current one runs dry: base.py `JobFeed`);
- waits in completion order (`ray.wait`); a job whose worker died is retried up to `max_attempts` (the
  owner alone replaces the worker); a job that raised is recorded failed, not retried;
- on Ctrl-C / SIGTERM, a shared pool's workers are asked to cancel this launch's renders at their next
  denoising step (other launches' jobs go on, and the workers stay warm); a private pool is killed.
Chunk and step events come back through the launch's progress sink (progress_sink.py).
Must not: write the ledger (RunEvents does), start or kill pool workers (the owner does).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ltx2_batch.config import EngineConfig
from ltx2_batch.core.code_identity import code_hash
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.library_logs import quiet_env
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import WorkQueue
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.errors import FatalBackendError
from ltx2_batch.runners.base import JobFeed, RunEvents, release_dependents
from ltx2_batch.runners.cluster import AddressKind, cluster_address
from ltx2_batch.runners.local_ray import ensure_local_ray
from ltx2_batch.runners.pool import local_address, make_room_from_other_versions, open_owner
from ltx2_batch.runners.pool_key import Placement, check_pool_name, private_pool, worker_key
from ltx2_batch.runners.pool_owner import LaunchSpec, Leased, PoolView, WorkerRecipe
from ltx2_batch.runners.progress_sink import ProgressSink
from ltx2_batch.runners.ray_connect import connect, placement, worker_count
from ltx2_batch.runners.reaper import ray_processes, reap, start_reaper, stop_reaper
from ltx2_batch.storage.location import is_url
from ltx2_batch.worker.spec import RunSpec, WorkerSpec

POLL_S = 0.2
CANCEL_WAIT_S = 60.0  # a shared pool's renders stop at their next step; a longer one is left to finish
OWNER_TIMEOUT_S = 60.0
ATTACH_TRIES = 3
ATTACH_RETRY_S = 0.5
_DEATHS = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ray.exceptions.ObjectLostError)


@dataclass
class _InFlight:
    leased: Leased
    job: RenderJob
    attempt: int


@dataclass
class _Flights:
    """This launch's renders in flight (by result ref) and its lease asks waiting at the owner."""

    renders: dict[Any, _InFlight] = field(default_factory=dict)
    asks: set[Any] = field(default_factory=set)

    def refs(self) -> list[Any]:
        """Every ref to wait on: the renders, then the asks."""
        return [*self.renders, *self.asks]

    def jobs(self) -> dict[str, RenderJob]:
        """The jobs rendering now, by job id."""
        return {flight.job.job_id: flight.job for flight in self.renders.values()}


class RayRunner:
    """Joins (or starts) Ray and a pool on the first batch; renders every batch through it."""

    def __init__(self, engine: EngineConfig, worker: WorkerSpec, run: RunSpec, verbose: bool = False) -> None:
        self._engine = engine
        self._worker = worker
        self._run = run
        self._verbose = verbose
        self._run_id = run.run.run_id if run is not None else ""
        self._shared = engine.pool is not None
        self._owner: Any = None
        self._sink: Any = None
        self._slots = 0  # workers of this launch's key in the pool (as the owner last said)
        self._capacity = 1  # jobs it may have in flight at once on them (the owner's count of its slots)
        self._wanted = 1
        self._deadline = 0.0  # no slot by then, nothing in flight: the workers cannot start
        self._attempts: dict[str, int] = {}
        self._retrying: dict[
            str, _InFlight
        ] = {}  # back in the queue after a worker died: their last row says so
        self._started_ray = False
        self._own_temp_dir: str | None = None  # a private Ray's session dir we made: removed by close()
        self._reaper: subprocess.Popen[bytes] | None = None  # kills that Ray if this driver dies with -9

    # the dispatch loop ----------------------------------------------------------------------------------

    def run(self, batches: Iterator[Sequence[RenderJob]], events: RunEvents, stop: threading.Event) -> None:
        """Render every batch through the pool: lease asks out for the jobs that could start, results taken in
        completion order. Ctrl-C or `stop` winds the in-flight ones down as cancelled."""
        feed = JobFeed(batches)
        feed.top_up(1)
        if feed.finished:
            return
        flights = _Flights()
        try:
            self._open(feed.queue.runnable, stop)
            while not stop.is_set():
                # more takeable jobs than slots: the next batch is planned while this one still renders
                feed.top_up(2 * max(self._slots, 1) + 1)
                if not flights.renders and (feed.finished or not feed.queue.runnable):
                    break  # done (or only shots whose predecessor never ran are left: cannot happen)
                self._grow(feed, flights)
                self._ask(feed, flights)
                ready, _ = ray.wait(flights.refs(), num_returns=1, timeout=POLL_S)
                for ref in [r for r in ready if r in flights.asks]:
                    flights.asks.discard(ref)
                    self._dispatch(ref, feed.queue, flights, events)
                self._drain(flights, events)  # chunk rows before their job's final row
                for ref in [r for r in ready if r in flights.renders]:
                    self._collect(ref, flights.renders.pop(ref), feed.queue, events)
                self._check_started(flights)
        except KeyboardInterrupt:
            stop.set()
        finally:
            self._wind_down(flights, feed.queue, events)

    def _grow(self, feed: JobFeed, flights: _Flights) -> None:
        """More jobs than the pool has workers of this key: ask the owner for more (up to the engine's)."""
        want = min(self._wanted, feed.queue.runnable + len(flights.renders))
        if want > self._slots:
            view = self._owner_call(self._owner.grow.remote(self._run_id, want))
            if view is not None:
                self._slots, self._capacity = view.workers, view.slots

    def _ask(self, feed: JobFeed, flights: _Flights) -> None:
        """One lease ask per job that could start, no more than this launch has slots on the pool (a worker
        takes two jobs of a launch that writes its files beside the next render): a launch never holds a
        place in the owner's queue that it could not use, so launches sharing a pool take turns."""
        room = max(self._capacity, 1) - len(flights.renders) - len(flights.asks)
        for _ in range(min(room, feed.queue.runnable - len(flights.asks))):
            flights.asks.add(self._owner.lease.remote(self._run_id))

    def _dispatch(self, ref: Any, queue: WorkQueue, flights: _Flights, events: RunEvents) -> None:
        """A slot came: send it the job that best matches what its worker has loaded (or give it back)."""
        answer = self._answer(ref)
        if isinstance(answer, str):
            raise FatalBackendError(f"render workers could not start: {answer}")
        job = queue.take(answer.warm)
        if job is None:
            self._owner.give_back.remote(answer.lease)
            return
        self._deadline = time.monotonic() + self._engine.start_timeout_s
        self._capacity = answer.slots
        attempt = self._attempts[job.job_id] = self._attempts.get(job.job_id, 0) + 1
        self._retrying.pop(job.job_id, None)
        events.job_started(job, attempt, answer.worker)
        result = answer.handle.render.remote(job, attempt, self._run, self._sink, answer.lease)
        flights.renders[result] = _InFlight(answer, job, attempt)

    def _answer(self, ref: Any) -> Leased | str:
        """What the owner answered an ask; its absence (None) or death means the pool was ended."""
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError as exc:
            raise FatalBackendError(self._pool_gone(f"its owner is gone: {type(exc).__name__}")) from None
        if answer is None:
            raise FatalBackendError(self._pool_gone("it was ended (`ltx2-batch pool down`)"))
        return answer  # type: ignore[no-any-return]  # Leased or a refusal, as the owner's `lease` returns

    def _pool_gone(self, why: str) -> str:
        pool = self._engine.pool or "of this launch"
        return f"the pool {pool} stopped serving this launch: {why}; rerun to resume"

    def _collect(
        self, ref: Any, flight: _InFlight, queue: WorkQueue, events: RunEvents, stopping: bool = False
    ) -> None:
        """Record a finished job. A dead worker or lost object is a system failure: the job goes back to the
        front of the queue up to `max_attempts` (the owner replaces the worker); while the run stops it is
        recorded cancelled. Any other Ray error is this job's failure."""
        try:
            outcome: JobOutcome = ray.get(ref)
        except _DEATHS as exc:
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            if stopping:
                outcome = self._outcome(
                    flight, OutcomeStatus.CANCELLED, f"run cancelled; worker died: {error}"
                )
            elif flight.attempt < self._engine.max_attempts:
                queue.push_front(flight.job)
                self._retrying[flight.job.job_id] = flight
                retry = self._outcome(flight, OutcomeStatus.RETRIED, f"worker died (will retry): {error}")
                events.job_finished(flight.job, retry, flight.attempt)
                return
            else:
                outcome = self._outcome(
                    flight, OutcomeStatus.FAILED, f"worker died {flight.attempt} times; last: {error}"
                )
        except ray.exceptions.RayError as exc:
            outcome = self._outcome(flight, OutcomeStatus.FAILED, f"{type(exc).__name__}: {str(exc)[:2000]}")
        self._attempts.pop(flight.job.job_id, None)
        events.job_finished(flight.job, outcome, flight.attempt)
        release_dependents(queue, flight.job, outcome, events, flight.leased.worker)

    @staticmethod
    def _outcome(flight: _InFlight, status: OutcomeStatus, error: str) -> JobOutcome:
        return JobOutcome(job_id=flight.job.job_id, status=status, worker=flight.leased.worker, error=error)

    def _drain(self, flights: _Flights, events: RunEvents) -> None:
        """Chunk rows and step bars the workers sent since the last poll (events of jobs no longer in flight
        are dropped: a late step of a finished job)."""
        if self._sink is None:
            return
        with contextlib.suppress(ray.exceptions.RayError):
            items = ray.get(self._sink.take.remote(), timeout=OWNER_TIMEOUT_S)
            jobs = flights.jobs()
            for job_id, attempt, event in items:
                job = jobs.get(job_id)
                if job is None:
                    continue
                if isinstance(event, StepEvent):
                    events.job_stepped(job, event, attempt)
                elif isinstance(event, ChunkOutcome):
                    events.chunk_finished(job, event, attempt)

    def _check_started(self, flights: _Flights) -> None:
        """Nothing in flight and no slot for `start_timeout_s` (since the start, or since the last slot): the
        workers could not be placed or built, or their replacements cannot (a node gone). Workers that are
        ready but busy with another launch's jobs are not a timeout: this launch waits its turn."""
        if flights.renders or time.monotonic() < self._deadline:
            return
        view: PoolView | None = self._owner_call(self._owner.view.remote(self._run_id))
        if view is not None and view.ready:
            self._deadline = time.monotonic() + self._engine.start_timeout_s
            return
        engine = self._engine
        others = f"; the pool holds {view.other_keys} worker(s) of other weights or code" if view else ""
        raise FatalBackendError(
            f"render workers did not start within {engine.start_timeout_s:.0f}s (each asks "
            f"num_gpus={engine.gpus_per_worker}, num_cpus={engine.cpus_per_worker}; cluster has "
            f"{ray.cluster_resources()}{others}); lower engine.num_workers or raise engine.start_timeout_s"
        )

    def _owner_call(self, ref: Any) -> Any:
        try:
            return ray.get(ref, timeout=OWNER_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            raise FatalBackendError(self._pool_gone(f"its owner is gone: {type(exc).__name__}")) from None

    # stopping -------------------------------------------------------------------------------------------

    def _wind_down(self, flights: _Flights, queue: WorkQueue, events: RunEvents) -> None:
        """The run ends (done, stopped, or failed): slots granted and not used go back; outcomes already in
        are recorded; a shared pool's other renders are cancelled cooperatively and waited for (up to
        CANCEL_WAIT_S); whatever is still out is recorded cancelled (a private pool dies in `close`)."""
        if flights.asks:
            granted, _ = ray.wait(list(flights.asks), num_returns=len(flights.asks), timeout=0)
            for ref in granted:
                with contextlib.suppress(ray.exceptions.RayError):
                    answer = ray.get(ref)
                    if isinstance(answer, Leased):
                        self._owner.give_back.remote(answer.lease)
            flights.asks.clear()
        wait_s = CANCEL_WAIT_S if self._shared else 0.0
        if flights.renders and self._shared:
            for handle in {id(f.leased.handle): f.leased.handle for f in flights.renders.values()}.values():
                handle.cancel.remote(self._run_id)
        deadline = time.monotonic() + wait_s
        while flights.renders:
            timeout = max(deadline - time.monotonic(), 0.0)
            ready, _ = ray.wait(
                list(flights.renders), num_returns=len(flights.renders), timeout=min(timeout, POLL_S)
            )
            self._drain(flights, events)
            for ref in ready:
                self._collect(ref, flights.renders.pop(ref), queue, events, stopping=True)
            if timeout <= 0:
                break
        for flight in flights.renders.values():
            still = " (still rendering when the launch ended: a rerun adopts its files if it finishes)"
            why = "run cancelled" + (still if self._shared else "")
            events.job_finished(
                flight.job, self._outcome(flight, OutcomeStatus.CANCELLED, why), flight.attempt
            )
        flights.renders.clear()
        for flight in self._retrying.values():  # their last row said "will retry": the run ends first
            why = "run stopped before the job's retry (its worker had died)"
            events.job_finished(
                flight.job, self._outcome(flight, OutcomeStatus.CANCELLED, why), flight.attempt
            )
        self._retrying.clear()

    # start and close ------------------------------------------------------------------------------------

    def _open(self, runnable: int, stop: threading.Event) -> None:
        """Join Ray (or start it), then attach to the pool: its owner starts the workers it lacks."""
        self._connect()
        if stop.is_set():
            return
        # on the driver's own node: a sink on a render node would die with it, and take its chunk rows along
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._sink = ray.remote(ProgressSink).options(num_cpus=0, scheduling_strategy=here).remote()
        code = code_hash()
        where = placement(self._engine)
        key = worker_key(self._worker.model, self._run.run.model_fingerprint, where, code)
        pool = self._engine.pool or private_pool(self._run_id)
        env = {"TQDM_DISABLE": "1", **quiet_env(self._verbose)}  # progress lines come from the driver only
        launch = LaunchSpec(
            run_id=self._run_id,
            key=key,
            recipe=WorkerRecipe(self._worker, where, env),
            overlap=self._run.output.overlap,
            publishes=is_url(self._run.output_dir),
            sink=self._sink,
            idle_s=self._engine.pool_idle_s if self._shared else None,
            keep_started=self._engine.pool_grow or not self._shared,
        )
        self._wanted = worker_count(self._engine)
        want = min(self._wanted, max(runnable, 1))
        if self._shared:
            need = Placement(want * where.num_gpus, want * where.num_cpus)
            make_room_from_other_versions(pool, code, need)
        view = self._attach(pool, code, launch, want)
        self._slots, self._capacity = view.workers, view.slots
        if view.refusal:
            raise FatalBackendError(f"render workers could not start: {view.refusal}")
        self._deadline = time.monotonic() + self._engine.start_timeout_s

    def _attach(self, pool: str, code: str, launch: LaunchSpec, want: int) -> PoolView:
        """Find (or create) the pool's owner and attach. An owner found in the moment it ends itself (an idle
        pool's owner does, after `pool_idle_s` empty) answers with its death: a new one is made, twice at most
        (its name is freed as the old one goes)."""
        for _ in range(ATTACH_TRIES - 1):
            self._owner = open_owner(pool, code, detached=self._shared)
            try:
                view: PoolView = ray.get(self._owner.attach.remote(launch, want), timeout=OWNER_TIMEOUT_S)
            except ray.exceptions.RayActorError:
                time.sleep(ATTACH_RETRY_S)  # the ended owner's name is freed asynchronously
            else:
                return view
        self._owner = open_owner(pool, code, detached=self._shared)
        return self._owner_call(self._owner.attach.remote(launch, want))  # type: ignore[no-any-return]  # a PoolView

    def _connect(self) -> None:
        address = cluster_address(self._engine)
        if self._shared:
            check_pool_name(self._engine.pool or "")
        if address.kind is AddressKind.private and not ray.is_initialized():
            if self._shared:  # a pool outlives its launch: it needs a Ray that does too
                local, started = ensure_local_ray(self._engine)
                if started:
                    print(f"started a local Ray for warm pools at {local.address} (it stays up; "
                          f"`ltx2-batch pool down engine.pool={self._engine.pool}` stops it)")  # fmt: skip
                address = local_address(local.address)
            elif not self._engine.temp_dir:
                self._own_temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: socket path limit
                # before ray.init: daemons it starts while this driver is killed are reaped too
                self._reaper = start_reaper(self._own_temp_dir)
        self._started_ray = (
            connect(self._engine, address, self._own_temp_dir, self._verbose) or self._started_ray
        )

    def close(self) -> None:
        """Leave the pool (a shared one keeps its workers; a private one is ended), kill the progress sink,
        then stop the private Ray; each step runs even if an earlier one fails (e.g. the cluster is gone)."""
        if self._owner is not None:
            with contextlib.suppress(Exception):
                if self._shared:
                    ray.get(self._owner.detach.remote(self._run_id), timeout=OWNER_TIMEOUT_S)
                else:
                    ray.get(self._owner.down.remote(), timeout=OWNER_TIMEOUT_S)
            if not self._shared:
                with contextlib.suppress(Exception):
                    ray.kill(self._owner, no_restart=True)
        if self._sink is not None:
            with contextlib.suppress(Exception):
                ray.kill(self._sink, no_restart=True)
        self._owner = self._sink = None
        if self._started_ray:
            with contextlib.suppress(Exception):
                ray.shutdown()
            self._started_ray = False
        stop_reaper(self._reaper)  # Ray is down (or never came up): its undertaker is not needed
        self._reaper = None
        if self._own_temp_dir:  # logs of a private Ray go with it; set engine.temp_dir to keep them
            if ray_processes(self._own_temp_dir):  # a daemon shutdown missed: do not leave it running
                reap(self._own_temp_dir)
            shutil.rmtree(self._own_temp_dir, ignore_errors=True)
            self._own_temp_dir = None
