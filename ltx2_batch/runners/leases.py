"""A pool owner's book: the pool's workers, which launch holds which of their slots, and who is idle.

The rules, kept pure here (no Ray, no clock of its own: callers pass `now`) so they are tested without a
cluster:
- a worker serves one key (weights, placement and code, pool_key.py); a launch is leased only workers of
  its own key, and only once they are ready (model built);
- a job is leased to one worker at a time, and a worker holds one launch's jobs at a time: one job, or two
  when that launch writes a job's files beside the next render on this worker's device (`output.overlap`
  settled for the worker: the same rule as worker/overlap.py);
- a free slot goes to the launch that asked first (the owner keeps the queue), on the worker with the fewest
  leases (one job per worker before any worker takes a second);
- a lease ends when the worker reports its render finished, when the launch gives back a lease it had no
  job for, when the worker dies, or when the launch detaches (ends, or is found dead);
- a ready worker with no lease for `idle_s` is due to retire; a worker marked `retiring` (its launch asked
  to leave the pool as it found it) retires as soon as it holds no lease; a refused worker's entry stays
  (saying why) until the launch that started it detaches.
Must not: start, call or kill actors (runners/pool_owner.py does what this decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from ltx2_batch.config import OverlapMode
from ltx2_batch.core.scheduler import AffinityKey
from ltx2_batch.worker.overlap import settle


class WorkerState(str, Enum):
    """Where a pool worker is in its life: building its model, ready to lease, or unable to serve its key."""

    starting = "starting"  # placed (or waiting for resources), building its model
    ready = "ready"
    refused = "refused"  # it cannot render this key here (its own message says why)


@dataclass
class WorkerEntry:
    """The book's record of one pool worker: its key, starter, state, leases and how long it has idled."""

    name: str  # display name, `ray-<index>`
    key: str
    index: int
    started_by: str  # run id of the launch that asked for it
    started_at: float
    state: WorkerState = WorkerState.starting
    cuda: bool = False
    refusal: str | None = None
    info: dict[str, str] = field(default_factory=dict)  # node, gpus, pid (from the worker)
    leases: dict[str, str] = field(default_factory=dict)  # lease id -> run id
    jobs_served: int = 0
    idle_since: float = 0.0
    warm: AffinityKey | None = None  # what the worker has loaded: the affinity of its last job
    retiring: bool = False


@dataclass
class LaunchEntry:
    """An attached launch: its key and what decides how many jobs each worker takes from it at once."""

    run_id: str
    key: str
    overlap: OverlapMode
    publishes: bool = False  # its run dir is a bucket: files upload beside the next render (storage/)


@dataclass(frozen=True)
class Grant:
    """One slot of one worker, leased to one launch for one job."""

    lease: str
    worker: str
    warm: AffinityKey | None


def lease_worker(lease: str) -> str:
    """The worker a lease id names (`<worker>#<serial>`)."""
    return lease.rpartition("#")[0]


class LeaseBook:
    """The pool's workers and launches, and who holds which slot: the module docstring's rules, no I/O."""

    def __init__(self) -> None:
        self.workers: dict[str, WorkerEntry] = {}
        self.launches: dict[str, LaunchEntry] = {}
        self._serial = 0

    # workers --------------------------------------------------------------------------------------------

    def add_worker(self, name: str, key: str, index: int, started_by: str, now: float) -> WorkerEntry:
        """Enter a worker that is starting for `key` (idle from `now`)."""
        entry = WorkerEntry(name, key, index, started_by, started_at=now, idle_since=now)
        self.workers[name] = entry
        return entry

    def ready(self, name: str, cuda: bool, info: dict[str, str], now: float) -> None:
        """The worker built its model: leasable from now (idle from `now`); unknown names are ignored."""
        entry = self.workers.get(name)
        if entry is not None:
            entry.state, entry.cuda, entry.info, entry.idle_since = WorkerState.ready, cuda, info, now

    def refuse(self, name: str, why: str) -> None:
        """The worker cannot render its key here; the entry keeps why. Unknown names are ignored."""
        entry = self.workers.get(name)
        if entry is not None:
            entry.state, entry.refusal = WorkerState.refused, why

    def remove(self, name: str) -> WorkerEntry | None:
        """Forget a worker (dead, retired or refused): its leases end with it."""
        return self.workers.pop(name, None)

    def of_key(self, key: str) -> list[WorkerEntry]:
        """The workers that serve or will serve `key` (not those retiring)."""
        return [w for w in self.workers.values() if w.key == key and not w.retiring]

    def refusal(self, key: str) -> str | None:
        """Why `key` cannot be served: every worker of it refused (None while one is ready or starting)."""
        workers = self.of_key(key)
        if workers and all(w.state is WorkerState.refused for w in workers):
            return f"render worker {workers[0].name}: {workers[0].refusal}"
        return None

    # launches -------------------------------------------------------------------------------------------

    def attach(self, run_id: str, key: str, overlap: OverlapMode, publishes: bool = False) -> None:
        """Enter a launch, so it may be granted slots on workers of `key`."""
        self.launches[run_id] = LaunchEntry(run_id, key, overlap, publishes)

    def holding(self, run_id: str) -> list[str]:
        """The workers that hold a lease of `run_id` (render, or are about to render, its jobs)."""
        return [w.name for w in self.workers.values() if run_id in w.leases.values()]

    def detach(self, run_id: str, now: float) -> list[str]:
        """The launch is gone: its leases end (a render still running reports to nobody; the owner cancels
        those of a launch whose driver died). Returns the workers left without a lease."""
        self.launches.pop(run_id, None)
        freed = []
        for worker in self.workers.values():
            mine = [lease for lease, holder in worker.leases.items() if holder == run_id]
            for lease in mine:
                del worker.leases[lease]
            if mine and not worker.leases:
                worker.idle_since = now
                freed.append(worker.name)
        return freed

    def retire_after(self, run_id: str) -> list[str]:
        """Mark the workers `run_id` started as retiring (the pool left as its launch found it); returns those
        that hold no lease and can retire now (the others retire when their last lease ends)."""
        now_free = []
        for worker in self.workers.values():
            if worker.started_by == run_id:
                worker.retiring = True
                if not worker.leases:
                    now_free.append(worker.name)
        return now_free

    # leases ---------------------------------------------------------------------------------------------

    def capacity(self, worker: WorkerEntry, launch: LaunchEntry) -> int:
        """Jobs of `launch` this worker takes at once: 2 when it writes or uploads one job's files beside the
        next render (worker/executor.py RunOutput.jobs_at_once, the worker's own count of the same rule)."""
        return 2 if settle(launch.overlap, cuda=worker.cuda).encodes or launch.publishes else 1

    def slots(self, run_id: str) -> int:
        """Jobs `run_id` could have in flight on this pool at once (a starting worker counts one): how many
        lease asks it keeps waiting, so it never queues for slots it could not use."""
        launch = self.launches.get(run_id)
        if launch is None:
            return 0
        total = 0
        for worker in self.of_key(launch.key):
            if worker.state is WorkerState.ready:
                total += self.capacity(worker, launch)
            elif worker.state is WorkerState.starting:
                total += 1
        return total

    def _free_for(self, worker: WorkerEntry, launch: LaunchEntry) -> bool:
        if worker.state is not WorkerState.ready or worker.key != launch.key or worker.retiring:
            return False
        if not worker.leases:
            return True
        holders = set(worker.leases.values())
        return holders == {launch.run_id} and len(worker.leases) < self.capacity(worker, launch)

    def grant(self, run_id: str) -> Grant | None:
        """A slot for `run_id` now, on the free worker with the fewest leases; None when none is free."""
        launch = self.launches.get(run_id)
        if launch is None:
            return None
        free = [w for w in self.workers.values() if self._free_for(w, launch)]
        if not free:
            return None
        worker = min(free, key=lambda w: (len(w.leases), w.index))
        self._serial += 1
        lease = f"{worker.name}#{self._serial}"
        worker.leases[lease] = run_id
        return Grant(lease, worker.name, worker.warm)

    def release(self, lease: str, warm: AffinityKey | None, served: bool, now: float) -> WorkerEntry | None:
        """The lease ended (the render returned, or the launch had no job for it). Returns its worker when
        it is still in the book and the lease was live."""
        worker = self.workers.get(lease_worker(lease))
        if worker is None or worker.leases.pop(lease, None) is None:
            return None
        if served:
            worker.jobs_served += 1
        if warm is not None:
            worker.warm = warm
        if not worker.leases:
            worker.idle_since = now
        return worker

    def leases_of(self, run_id: str) -> Iterator[tuple[WorkerEntry, str]]:
        """Every live lease of `run_id`, with the worker holding it."""
        for worker in self.workers.values():
            for lease, holder in worker.leases.items():
                if holder == run_id:
                    yield worker, lease

    # idleness -------------------------------------------------------------------------------------------

    def due_to_retire(self, now: float, idle_s: float | None) -> list[str]:
        """Workers to end now: retiring ones without leases, and ready ones idle for `idle_s` or longer."""
        due = []
        for worker in self.workers.values():
            if worker.leases or worker.state is WorkerState.starting:
                continue
            if worker.state is WorkerState.refused:
                continue  # its actor is gone already; the entry says why until its launch detaches
            if worker.retiring or (idle_s is not None and now - worker.idle_since >= idle_s):
                due.append(worker.name)
        return due

    def forget_refused(self, run_id: str) -> list[str]:
        """Drop the refused workers `run_id` started (their launch has read why)."""
        gone = [
            w.name for w in self.workers.values() if w.started_by == run_id and w.state is WorkerState.refused
        ]
        for name in gone:
            del self.workers[name]
        return gone

    def idle_of_other_keys(self, key: str) -> list[WorkerEntry]:
        """Ready workers of other keys holding no lease, longest idle first (what may make room for `key`)."""
        idle = [
            w for w in self.workers.values() if w.key != key and not w.leases and w.state is WorkerState.ready
        ]
        return sorted(idle, key=lambda w: w.idle_since)


def status_row(worker: WorkerEntry, model: str, now: float) -> dict[str, object]:
    """One worker as `pool status` shows it (the owner adds what the worker reports: memory, builds)."""
    state = worker.state.value if worker.state is not WorkerState.ready else "idle"
    return {
        "worker": worker.name,
        "state": "busy" if worker.leases else state,
        # the launches it renders for now, by the end of their run ids (random, unlike their start)
        "launch": ",".join(sorted({run_id[-6:] for run_id in worker.leases.values()})) or "-",
        "model": model,
        "key": worker.key[:12],
        "warm": worker.warm[0] if worker.warm else "-",
        "node": worker.info.get("ip", "-"),
        "gpus": worker.info.get("gpus") or "-",
        "idle_s": 0.0 if worker.leases else round(now - worker.idle_since, 1),
        "jobs": worker.jobs_served,
        "leases": len(worker.leases),
        "refusal": worker.refusal,
    }
