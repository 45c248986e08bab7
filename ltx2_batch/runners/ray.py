"""`engine=ray`: one warm render actor per GPU (or N CPU actors), fed from a driver-side work queue.

The driver keeps exactly one job in flight per actor and waits in completion order (`ray.wait`), so a
slow job never blocks the others and a free actor takes the next job that matches what it has loaded.
System failures (the actor process died: killed, out of memory) replace the actor and resubmit the job
up to `max_attempts`; a job that raises inside the actor is an application failure, recorded and not
retried. Ctrl-C / SIGTERM kill the in-flight actors (Ray cannot cancel a running actor task) and report
those jobs cancelled. Chunk progress streams back through a small Ray queue.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.queue import Empty, Queue

from ltx2_batch.config import EngineConfig
from ltx2_batch.execute import JobOutcome
from ltx2_batch.jobs import RenderJob
from ltx2_batch.runners.base import RunEvents, unrunnable
from ltx2_batch.runners.factory import ExecutorSpec, build_executor
from ltx2_batch.scheduler import AffinityKey, WorkQueue, affinity_key

POLL_S = 0.2


class RenderWorker:
    """Ray actor body: holds the warm backend for its whole life."""

    def __init__(self, spec: ExecutorSpec, name: str, progress: Queue | None) -> None:
        self._name = name
        self._progress = progress
        # On a cluster (or several nodes on one host) the Ray node id tells nodes apart, the hostname may not.
        node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
        self._executor = build_executor(spec, name, node=node)

    def where(self) -> dict[str, str]:
        return {
            "worker": self._name,
            "pid": str(os.getpid()),
            "node": ray.util.get_node_ip_address(),
            "gpus": ",".join(str(g) for g in ray.get_gpu_ids()),
        }

    def render(self, job: RenderJob, attempt: int) -> JobOutcome:
        def on_chunk(chunk_job: RenderJob, chunk: Any) -> None:  # noqa: ANN401 - ChunkOutcome
            if self._progress is not None:
                self._progress.put_nowait((chunk_job.job_id, attempt, chunk))

        return self._executor.execute(job, on_chunk=on_chunk)


@dataclass
class _Slot:
    name: str
    actor: Any  # ActorHandle
    warm: AffinityKey | None = None


@dataclass
class _InFlight:
    slot: _Slot
    job: RenderJob
    attempt: int


def connect(engine: EngineConfig) -> bool:
    """Join a cluster (`address`) or start a local Ray. Returns True when this call started Ray.

    ray.init installs a C-level SIGTERM handler in the driver that aborts the process; the driver's own
    handler (stop dispatching, record cancellations, shut down cleanly) is put back afterwards.
    """
    if ray.is_initialized():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return _init(engine)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _init(engine: EngineConfig) -> bool:
    if engine.address:
        ray.init(address=engine.address, log_to_driver=False, _node_ip_address=engine.node_ip_address)
        return True
    # Token auth would write ~/.ray/auth_token; a private local Ray does not need it (FIELD_NOTES).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp_dir = engine.temp_dir or tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: socket path limit
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
    def __init__(self, engine: EngineConfig, spec: ExecutorSpec) -> None:
        self._engine = engine
        self._spec = spec
        self._spawned: list[_Slot] = []

    def _spawn(self, progress: Queue) -> _Slot:
        name = f"ray-{len(self._spawned)}"
        use_gpu = ray.cluster_resources().get("GPU", 0) > 0 and self._engine.gpus_per_worker > 0
        actor_cls = ray.remote(RenderWorker).options(
            num_gpus=self._engine.gpus_per_worker if use_gpu else 0,
            num_cpus=self._engine.cpus_per_worker,
            max_restarts=0,  # the driver replaces dead actors itself, so it knows which job to retry
            max_concurrency=1,
            runtime_env={"env_vars": {"TQDM_DISABLE": "1"}},  # progress lines come from the driver only
        )
        slot = _Slot(name=name, actor=actor_cls.remote(self._spec, name, progress))
        self._spawned.append(slot)
        return slot

    def run(self, jobs: Sequence[RenderJob], events: RunEvents, stop: threading.Event) -> None:
        started_ray = connect(self._engine)
        progress = Queue(actor_options={"num_cpus": 0})
        queue = WorkQueue(jobs)
        by_id = {job.job_id: job for job in jobs}
        slots = [self._spawn(progress) for _ in range(min(worker_count(self._engine), max(len(jobs), 1)))]
        idle: list[_Slot] = list(slots)
        in_flight: dict[Any, _InFlight] = {}
        attempts: dict[str, int] = {}
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
                    attempt = attempts[job.job_id] = attempts.get(job.job_id, 0) + 1
                    slot.warm = affinity_key(job)
                    events.job_started(job, attempt, slot.name)
                    in_flight[slot.actor.render.remote(job, attempt)] = _InFlight(slot, job, attempt)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                self._drain(progress, by_id, events)
                for ref in ready:
                    flight = in_flight.pop(ref)
                    replacement = self._collect(ref, flight, queue, events, progress)
                    idle.append(replacement or flight.slot)
        except KeyboardInterrupt:
            stop.set()
        finally:
            self._drain(progress, by_id, events)
            for flight in in_flight.values():
                ray.kill(flight.slot.actor, no_restart=True)
                events.job_finished(
                    flight.job,
                    JobOutcome(job_id=flight.job.job_id, status="cancelled", error="run cancelled",
                               worker=flight.slot.name),
                    flight.attempt,
                )
            for slot in self._spawned:
                ray.kill(slot.actor, no_restart=True)
            ray.kill(progress.actor, no_restart=True)
            if started_ray:
                ray.shutdown()

    def _collect(
        self, ref: Any, flight: _InFlight, queue: WorkQueue, events: RunEvents, progress: Queue  # noqa: ANN401
    ) -> _Slot | None:
        """Record a finished job; on worker death replace the actor and maybe resubmit the job."""
        try:
            outcome: JobOutcome = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            ray.kill(flight.slot.actor, no_restart=True)
            replacement = self._spawn(progress)
            if flight.attempt < self._engine.max_attempts:
                queue.push_front(flight.job)
                events.job_finished(
                    flight.job,
                    JobOutcome(job_id=flight.job.job_id, status="retrying", worker=flight.slot.name,
                               error=f"worker died: {type(exc).__name__}: {str(exc)[:500]}"),
                    flight.attempt,
                )
            else:
                events.job_finished(
                    flight.job,
                    JobOutcome(job_id=flight.job.job_id, status="failed", worker=flight.slot.name,
                               error=f"worker died {flight.attempt} times; last: {type(exc).__name__}: "
                               f"{str(exc)[:500]}"),
                    flight.attempt,
                )
                for blocked in queue.finished(flight.job.job_id, ok=False):
                    events.job_finished(blocked, unrunnable(blocked, flight.job, flight.slot.name), 1)
            return replacement
        events.job_finished(flight.job, outcome, flight.attempt)
        for blocked in queue.finished(flight.job.job_id, ok=outcome.status == "done"):
            events.job_finished(blocked, unrunnable(blocked, flight.job, flight.slot.name), 1)
        return None

    @staticmethod
    def _drain(progress: Queue, by_id: dict[str, RenderJob], events: RunEvents) -> None:
        while True:
            try:
                job_id, attempt, chunk = progress.get_nowait()
            except Empty:
                return
            events.chunk_finished(by_id[job_id], chunk, attempt)


def wait_for_cluster(min_gpus: int, timeout_s: float = 60.0) -> None:
    """Block until the cluster reports `min_gpus` GPUs (workers joining after the head)."""
    deadline = time.monotonic() + timeout_s
    while ray.cluster_resources().get("GPU", 0) < min_gpus:
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster has {ray.cluster_resources().get('GPU', 0)} GPUs, wanted {min_gpus}")
        time.sleep(0.5)
