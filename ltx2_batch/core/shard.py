"""`shard=i/n`: which jobs of a manifest one launch of an n-machine run renders. Pure.

Owns the split rule. Jobs are dealt out in the order the manifest expands them (held jobs first, then
each prompt file's rows), one unit at a time, each unit to the launch that has the fewest jobs so far
(ties: the lowest index). A unit is one job, or every shot of one storyboard scene (a scene's shots wait
on each other, so they stay in one launch). Without storyboards that is round-robin on the position in
the expanded stream: each launch gets floor(N/n) or ceil(N/n) jobs. With scenes the counts differ by at
most the size of the largest scene. Balance is by job count, not frames.

Every launch walks the same stream and makes the same decisions, so the split is deterministic and
disjoint without any launch seeing another's; the decision for a position needs only the n counters,
so it streams (a prompt file is never held) and a launch skips building the jobs it does not own.
Rows appended to a prompts file keep the split of the rows before them. A prompt repeated in a file at
positions dealt to two launches renders in both (same id, same output name). Must not read files or
know the manifest schema.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"i/n"` with 0 <= i < n."""
        try:
            left, right = text.split("/")
            shard = cls(int(left), int(right))
        except ValueError:
            raise ConfigError(f"shard must look like 'i/n' (e.g. shard=0/4), got {text!r}") from None
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ConfigError(f"shard={text!r}: need 0 <= i < n, e.g. shard=0/{max(shard.count, 1)}")
        return shard

    def dealer(self) -> ShardDealer:
        """A fresh walk over the expanded stream for this launch."""
        return ShardDealer(self)


class ShardDealer:
    """Deals the units of one walk over the expanded stream; `take(size)` says whether this launch owns
    the next unit. Holds n counters and the scenes seen so far (storyboards are held in memory anyway)."""

    def __init__(self, shard: Shard) -> None:
        self._shard = shard
        self._loads = [0] * shard.count
        self._scenes: dict[str, bool] = {}

    def take(self, size: int = 1) -> bool:
        loads = self._loads
        low = min(loads)
        target = loads.index(low)  # the first launch with the fewest jobs: round-robin for size 1
        loads[target] = low + size
        return target == self._shard.index

    def take_scene(self, scene: str, size: int) -> bool:
        """A storyboard scene of `size` shots: dealt as one unit at its first shot, then remembered."""
        if scene not in self._scenes:
            self._scenes[scene] = self.take(size)
        return self._scenes[scene]

    def share(self, jobs: Sequence[RenderJob]) -> Iterator[RenderJob]:
        """This launch's share of jobs held in memory (scenes are counted first, then dealt whole)."""
        scenes = Counter(job.scene for job in jobs if job.scene)
        for job in jobs:
            if self.take_scene(job.scene, scenes[job.scene]) if job.scene else self.take():
                yield job
