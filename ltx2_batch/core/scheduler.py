"""Which jobs still need rendering, in what order, and which one a free worker takes next.

Pure: no torch, no Ray, no files (callers pass what they read). Work is grouped by the model state it
needs (pipeline kind, LoRA set, upscalers) so a warm worker keeps its pipeline; a free worker never idles
while any job is left, it only prefers jobs that match what it already has loaded.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ltx2_batch.core.jobs import RenderJob

AffinityKey = tuple[object, ...]


def affinity_key(job: RenderJob) -> AffinityKey:
    """What must be loaded to render `job`; equal keys share a warm pipeline."""
    return (job.pipeline.value, job.upscale.spatial, job.upscale.temporal, job.lora_set)


@dataclass(frozen=True)
class PendingSplit:
    """The expanded jobs split into those to render and those already done here."""

    pending: tuple[RenderJob, ...]
    skipped: tuple[RenderJob, ...]  # already done in this output dir, outputs present


def split_pending(
    jobs: Sequence[RenderJob],
    completed_ids: set[str],
    outputs_exist: Callable[[RenderJob], bool],
    force: bool = False,
) -> PendingSplit:
    """pending = expanded - completed. A job recorded done whose file vanished is rendered again."""
    pending: list[RenderJob] = []
    skipped: list[RenderJob] = []
    seen: set[str] = set()
    for job in jobs:
        if job.job_id in seen:  # two manifest entries with identical parameters: render once
            continue
        seen.add(job.job_id)
        if not force and job.job_id in completed_ids and outputs_exist(job):
            skipped.append(job)
        else:
            pending.append(job)
    return PendingSplit(tuple(pending), tuple(skipped))


class WorkQueue:
    """Jobs grouped by affinity; `take(warm_key)` prefers the group a worker already has loaded.

    When the worker's group is empty it takes the head of the largest remaining group, so swaps are few and
    long groups start early. Retries go to the front of their group. A storyboard shot waits (parked, not
    takeable) until the shot it follows is done; `finished` releases it, or hands back the shots that can
    no longer run because the one before them failed.
    """

    def __init__(self, jobs: Iterable[RenderJob] = ()) -> None:
        self._groups: OrderedDict[AffinityKey, deque[RenderJob]] = OrderedDict()
        self._parked: dict[str, list[RenderJob]] = {}
        self._unfinished: set[str] = set()  # given to this queue and not yet `finished`
        self.extend(jobs)

    def extend(self, jobs: Iterable[RenderJob]) -> None:
        """Add a batch: a shot whose predecessor is in this batch or still unfinished in the queue (queued,
        parked or in flight) waits for it; one whose predecessor is not here was done before."""
        jobs = list(jobs)
        self._unfinished.update(job.job_id for job in jobs)
        for job in jobs:
            if job.after in self._unfinished:
                self._parked.setdefault(job.after, []).append(job)
            else:
                self._add(job)

    def _add(self, job: RenderJob) -> None:
        self._groups.setdefault(affinity_key(job), deque()).append(job)

    def __len__(self) -> int:
        """Jobs not yet taken, parked ones included."""
        return sum(len(group) for group in self._groups.values()) + self.parked

    @property
    def parked(self) -> int:
        """Storyboard shots waiting for the shot before them to finish."""
        return sum(len(jobs) for jobs in self._parked.values())

    @property
    def runnable(self) -> int:
        """Jobs a free worker could take now."""
        return sum(len(group) for group in self._groups.values())

    def finished(self, job_id: str, ok: bool) -> list[RenderJob]:
        """Release the shots waiting on `job_id`; if it failed, return them (and theirs) as unrunnable."""
        self._unfinished.discard(job_id)
        waiting = self._parked.pop(job_id, [])
        if ok:
            for job in waiting:
                self._add(job)
            return []
        dropped = list(waiting)
        for job in waiting:
            dropped += self.finished(job.job_id, ok=False)
        return dropped

    def take(self, warm_key: AffinityKey | None = None) -> RenderJob | None:
        """The next runnable job, or None when every remaining job is parked (or none is left)."""
        if warm_key is not None and self._groups.get(warm_key):
            return self._pop(warm_key)
        if not self._groups:
            return None
        largest = max(self._groups, key=lambda key: len(self._groups[key]))
        return self._pop(largest)

    def push_front(self, job: RenderJob) -> None:
        """Put `job` back at the front of its group: a retry is taken before the jobs queued behind it."""
        key = affinity_key(job)
        self._groups.setdefault(key, deque()).appendleft(job)

    def _pop(self, key: AffinityKey) -> RenderJob:
        group = self._groups[key]
        job = group.popleft()
        if not group:
            del self._groups[key]
        return job
