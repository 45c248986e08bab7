"""`engine=ray`: one warm render actor per GPU (or N CPU actors), fed from a driver-side work queue.

The driver keeps exactly one job in flight per actor and waits in completion order (`ray.wait`), so a
slow job never blocks the others and a free actor takes the next job that matches what it has loaded.
System failures (the actor process died: killed, out of memory) replace the actor and resubmit the job
up to `max_attempts`; a job that raises inside the actor is an application failure, recorded and not
retried. Ctrl-C / SIGTERM kill the in-flight actors (Ray cannot cancel a running actor task) and report
those jobs cancelled. Chunk progress and denoising steps (about ten step events a second per actor, plus each
stage's end: the executor's StepThrottle) stream back through a small Ray queue.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.queue import Empty, Full, Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ltx2_batch.config import EngineConfig
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import AffinityKey, WorkQueue, affinity_key
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.errors import FatalBackendError, Ltx2BatchError
from ltx2_batch.runners.base import RunEvents, release_dependents
from ltx2_batch.runners.cluster import AddressKind, cluster_address, unreachable
from ltx2_batch.runners.reaper import ray_processes, reap, start_reaper, stop_reaper
from ltx2_batch.worker.executor import RunOutput
from ltx2_batch.worker.spec import RunSpec, WorkerSpec, build_executor, renders_on_cuda, run_output

POLL_S = 0.2


class RenderWorker:
    """Ray actor body: holds the warm backend for its whole life; each call says which launch it is for."""

    def __init__(self, spec: WorkerSpec, name: str, progress: Queue | None) -> None:
        self._name = name
        self._progress = progress
        # On a cluster (or several nodes on one host) the Ray node id tells nodes apart, the hostname may not.
        node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
        # A setting this worker's device cannot run (fp8 without CUDA, a missing file) is found before any
        # weights load; the actor stays up to say so (`where`), so the driver stops the run once, with the
        # tool's own message and no traceback.
        self._refusal: str | None = None
        try:
            self._executor = build_executor(spec, name, node=node)
        except Ltx2BatchError as exc:
            self._refusal = str(exc)
        # With an overlap (output.overlap) the actor takes two calls at once (max_concurrency=2): renders
        # never overlap (this lock), but call n waits for its encode (and decode) while call n+1 renders.
        self._render_lock = threading.Lock()
        self._outputs: dict[str, RunOutput] = {}  # per launch (run id): its writer and settled overlap

    def where(self, run: RunSpec) -> dict[str, str]:
        """Who and where this actor is, and how many of `run`'s jobs it takes at once (2 when it writes or
        uploads one job's files beside the next job's render); or why it cannot render (`refusal`)."""
        if self._refusal is not None:
            return {"worker": self._name, "refusal": self._refusal}
        return {
            "worker": self._name,
            "pid": str(os.getpid()),
            "node": ray.util.get_node_ip_address(),
            "gpus": ",".join(str(g) for g in ray.get_gpu_ids()),
            "capacity": str(self._output(run).jobs_at_once),
        }

    def _output(self, run: RunSpec) -> RunOutput:
        out = self._outputs.get(run.run.run_id)
        if out is None:
            out = self._outputs[run.run.run_id] = run_output(run, cuda=renders_on_cuda(self._executor))
        return out

    def render(self, job: RenderJob, attempt: int, run: RunSpec) -> JobOutcome:
        def on_chunk(chunk_job: RenderJob, chunk: Any) -> None:
            if self._progress is not None:
                # a chunk row is not worth failing a render for: the queue's node may be gone (its state
                # files, not its row, are what a resume reads)
                with contextlib.suppress(Full, ray.exceptions.RayError):
                    self._progress.put_nowait((chunk_job.job_id, attempt, chunk))

        def on_step(step_job: RenderJob, step: StepEvent) -> None:
            if self._progress is not None:
                # a bar that misses an update is not worth failing a render for (the queue's actor is gone)
                with contextlib.suppress(Full, ray.exceptions.RayError):
                    self._progress.put_nowait((step_job.job_id, attempt, step))

        with self._render_lock:
            future = self._executor.submit(job, self._output(run), on_chunk=on_chunk, on_step=on_step)
        return future.result()


@dataclass
class _Slot:
    name: str
    actor: Any  # ActorHandle
    # jobs in flight at once: 2 when the actor writes job n's files while rendering job n+1 (from `where`);
    # None until the actor has answered (a replacement started mid-run counts as 1 until the next batch)
    capacity: int | None = None
    warm: AffinityKey | None = None


@dataclass
class _InFlight:
    slot: _Slot
    job: RenderJob
    attempt: int


def connect(engine: EngineConfig, temp_dir: str | None = None) -> bool:
    """Join a cluster (`engine.address`, else `$RAY_ADDRESS`, as `ray job submit` sets it) or start a
    private local Ray. Returns True when this call initialised Ray (and so must shut it down).

    ray.init installs a C-level SIGTERM handler in the driver that aborts the process; the driver's own
    handler (stop dispatching, record cancellations, shut down cleanly) is put back afterwards.
    """
    if ray.is_initialized():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return _init(engine, temp_dir)
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


def _init(engine: EngineConfig, temp_dir: str | None) -> bool:
    address = cluster_address(engine)
    if address.kind is not AddressKind.private:
        problem = unreachable(address)
        if problem:
            raise FatalBackendError(problem)
        try:
            ray.init(address=address.text, log_to_driver=False, _node_ip_address=engine.node_ip_address)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:  # Ray's own words, without its traceback
            raise FatalBackendError(
                f"cannot join the Ray cluster at {address.text} (from {address.origin}): "
                f"{str(exc).strip().splitlines()[0][:300]}"
            ) from None
        return True
    # Token auth would write ~/.ray/auth_token; a private local Ray does not need it.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp_dir = engine.temp_dir or temp_dir  # the runner makes a short one (socket path limit) and removes it
    ray.init(
        num_cpus=engine.num_cpus,
        num_gpus=engine.num_gpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address=engine.node_ip_address or "127.0.0.1",  # a private Ray: keep traffic on loopback
        _temp_dir=temp_dir,
    )
    return True


def worker_count(engine: EngineConfig) -> int:
    if engine.num_workers:
        return engine.num_workers
    gpus = int(ray.cluster_resources().get("GPU", 0) // max(engine.gpus_per_worker, 1e-9))
    return max(gpus, 1)


class RayRunner:
    """Starts (or joins) Ray and its actors on the first `run`; later runs reuse the warm actors."""

    def __init__(self, engine: EngineConfig, worker: WorkerSpec, run: RunSpec) -> None:
        self._engine = engine
        self._worker = worker
        self._run = run
        self._spawned: list[_Slot] = []
        self._slots: list[_Slot] = []
        self._progress: Queue | None = None
        self._started_ray = False
        self._own_temp_dir: str | None = None  # a private Ray's session dir we made: removed by close()
        self._reaper: subprocess.Popen[bytes] | None = None  # kills that Ray if this driver dies with -9
        self._attempts: dict[str, int] = {}

    def _spawn(self) -> _Slot:
        name = f"ray-{len(self._spawned)}"
        use_gpu = ray.cluster_resources().get("GPU", 0) > 0 and self._engine.gpus_per_worker > 0
        actor_cls = ray.remote(RenderWorker).options(
            num_gpus=self._engine.gpus_per_worker if use_gpu else 0,
            num_cpus=self._engine.cpus_per_worker,
            max_restarts=0,  # the driver replaces dead actors itself, so it knows which job to retry
            max_concurrency=2,  # the driver sends a second job only to an actor that overlaps (capacity)
            runtime_env={"env_vars": {"TQDM_DISABLE": "1"}},  # progress lines come from the driver only
        )
        slot = _Slot(name=name, actor=actor_cls.remote(self._worker, name, self._progress))
        self._spawned.append(slot)
        return slot

    def _ensure_workers(self, job_count: int, stop: threading.Event) -> None:
        """Connect once, then top the pool up to min(workers, jobs): a resumed streaming run whose first
        batch is small still gets every GPU for its later batches, and actors killed by a cancel come back."""
        if self._progress is None:
            private = cluster_address(self._engine).kind is AddressKind.private
            if not (ray.is_initialized() or not private or self._engine.temp_dir):
                self._own_temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: socket path limit
                # before ray.init: daemons it starts while this driver is killed are reaped too
                self._reaper = start_reaper(self._own_temp_dir)
            self._started_ray = connect(self._engine, self._own_temp_dir) or self._started_ray
            if stop.is_set():  # a signal during start-up: no queue, no actors (close() cleans up)
                return
            # on the driver's own node: a progress channel on a render node would die with it
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            self._progress = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        want = min(worker_count(self._engine), max(job_count, 1))
        new = [self._spawn() for _ in range(want - len(self._slots))]
        # new actors, and replacements started during the last batch, report ready (and their capacity)
        unknown = [slot for slot in self._slots if slot.capacity is None] + new
        if unknown:
            self._wait_ready(unknown, stop)
            self._slots.extend(new)

    def _wait_ready(self, slots: list[_Slot], stop: threading.Event) -> None:
        """Each new actor has built its backend. One that cannot (missing weights on a node, fp8 without
        CUDA) stops the run with its own error instead of looking like a crash that retries every job; one
        that cannot be placed (asked for more GPUs than the cluster has) times out with what was asked."""
        by_ref = {slot.actor.where.remote(self._run): slot for slot in slots}
        pending = list(by_ref)
        deadline = time.monotonic() + self._engine.start_timeout_s
        while pending and not stop.is_set():
            if time.monotonic() > deadline:
                engine = self._engine
                raise FatalBackendError(
                    f"{len(pending)} render worker(s) did not start within {engine.start_timeout_s:.0f}s "
                    f"(each asks num_gpus={engine.gpus_per_worker}, num_cpus={engine.cpus_per_worker}; "
                    f"cluster has {ray.cluster_resources()}); lower engine.num_workers or raise "
                    "engine.start_timeout_s"
                )
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
            try:
                for ref in ready:  # the actor settled output.overlap_* for its device (auto: on for CUDA)
                    answer = ray.get(ref)
                    if "refusal" in answer:
                        raise FatalBackendError(f"render worker {answer['worker']}: {answer['refusal']}")
                    by_ref[ref].capacity = int(answer["capacity"])
            except ray.exceptions.RayError as exc:
                raise FatalBackendError(f"render workers could not start: {exc}") from exc

    def run(self, jobs: Sequence[RenderJob], events: RunEvents, stop: threading.Event) -> None:
        self._ensure_workers(len(jobs), stop)
        queue = WorkQueue(jobs)
        by_id = {job.job_id: job for job in jobs}
        # interleaved (A, B, A, B): a second job goes to an actor only when every actor has one
        idle: list[_Slot] = [s for k in range(2) for s in self._slots if k < (s.capacity or 1)]
        in_flight: dict[Any, _InFlight] = {}
        try:
            while not stop.is_set() and (len(queue) or in_flight):
                if not in_flight and len(queue) == queue.parked:
                    break  # only shots whose predecessor never ran are left (cannot happen, but never spin)
                while idle and len(queue):
                    slot = idle.pop(0)
                    job = queue.take(slot.warm)
                    if job is None:
                        idle.append(slot)
                        break
                    attempt = self._attempts[job.job_id] = self._attempts.get(job.job_id, 0) + 1
                    slot.warm = affinity_key(job)
                    events.job_started(job, attempt, slot.name)
                    ref = slot.actor.render.remote(job, attempt, self._run)
                    in_flight[ref] = _InFlight(slot, job, attempt)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                self._drain(by_id, events)
                for ref in ready:
                    idle += self._collect(ref, in_flight.pop(ref), queue, events)
        except KeyboardInterrupt:
            stop.set()
        finally:
            if in_flight:  # results already in are real outcomes: record them, cancel only the rest
                ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                for ref in ready:
                    self._collect(ref, in_flight.pop(ref), queue, events)
            self._drain(by_id, events)
            for flight in in_flight.values():  # Ray cannot cancel a running actor task: kill and replace
                ray.kill(flight.slot.actor, no_restart=True)
                if flight.slot in self._slots:
                    self._slots.remove(flight.slot)
                events.job_finished(
                    flight.job,
                    self._outcome(flight, OutcomeStatus.CANCELLED, "run cancelled"),
                    flight.attempt,
                )

    def close(self) -> None:
        """Kill every actor and the progress queue, then stop the private Ray; each step runs even if an
        earlier one fails (e.g. the cluster is already gone, or the queue's actor died with its raylet).

        `is not None`, never truthiness, on the queue: `bool(Queue)` calls its `len()` through `ray.get`,
        which raises when the queue actor is gone and is False for an empty (live) queue."""
        actors = [slot.actor for slot in self._spawned]
        if self._progress is not None:
            actors.append(self._progress.actor)
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._spawned, self._slots, self._progress = [], [], None
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

    def _collect(self, ref: Any, flight: _InFlight, queue: WorkQueue, events: RunEvents) -> list[_Slot]:
        """Record a finished job; returns the capacity freed by it (the slot, a replacement actor's whole
        capacity if this actor died, or nothing for the second job of an actor already replaced).

        A dead actor or lost object is a system failure: the job is resubmitted up to `max_attempts`.
        Any other Ray error is this job's failure. Either way the job gets its final ledger row."""
        try:
            outcome: JobOutcome = ray.get(ref)
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.ObjectLostError,
        ) as exc:
            freed: list[_Slot] = []
            if flight.slot in self._slots:  # the first of its jobs to report the death replaces it
                ray.kill(flight.slot.actor, no_restart=True)
                self._slots.remove(flight.slot)
                replacement = self._spawn()
                self._slots.append(replacement)
                freed = [replacement]  # one job until it has answered `where` (next batch)
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            if flight.attempt < self._engine.max_attempts:
                queue.push_front(flight.job)
                message = f"worker died (will retry): {error}"
                events.job_finished(
                    flight.job, self._outcome(flight, OutcomeStatus.RETRIED, message), flight.attempt
                )
                return freed
            outcome = self._outcome(
                flight, OutcomeStatus.FAILED, f"worker died {flight.attempt} times; last: {error}"
            )
            self._finished(flight, outcome, queue, events)
            return freed
        except ray.exceptions.RayError as exc:
            outcome = self._outcome(flight, OutcomeStatus.FAILED, f"{type(exc).__name__}: {str(exc)[:2000]}")
        self._finished(flight, outcome, queue, events)
        return [flight.slot]

    def _finished(self, flight: _InFlight, outcome: JobOutcome, queue: WorkQueue, events: RunEvents) -> None:
        """A job's final outcome: recorded, its attempt count forgotten, its dependent shots released."""
        self._attempts.pop(flight.job.job_id, None)
        events.job_finished(flight.job, outcome, flight.attempt)
        release_dependents(queue, flight.job, outcome, events, flight.slot.name)

    @staticmethod
    def _outcome(flight: _InFlight, status: OutcomeStatus, error: str) -> JobOutcome:
        return JobOutcome(job_id=flight.job.job_id, status=status, worker=flight.slot.name, error=error)

    def _drain(self, by_id: dict[str, RenderJob], events: RunEvents) -> None:
        if self._progress is None:
            return
        while True:
            try:
                job_id, attempt, event = self._progress.get_nowait()
            except Empty:
                return
            except ray.exceptions.RayError:  # the queue died with its node: outcomes still come back
                return
            if job_id not in by_id:
                continue
            if isinstance(event, StepEvent):
                events.job_stepped(by_id[job_id], event, attempt)
            else:
                events.chunk_finished(by_id[job_id], event, attempt)
