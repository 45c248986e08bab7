"""`shard=i/n`: which jobs of a manifest one launch of an n-machine run renders. Pure.

Owns the split rule and the spec's one spelling (`Shard.parse("00/2")` is `0/2`: locks and records use
`str(shard)`, so two spellings of one shard are one shard).
- Hand-written (held) jobs are dealt out in the order the manifest expands them, one unit at a time, each
  unit to the launch that has the fewest jobs so far (ties: the lowest index). A unit is one job, or every
  shot of one storyboard scene (a scene's shots wait on each other, so they stay in one launch). Without
  storyboards that is round-robin: each launch gets floor(N/n) or ceil(N/n) jobs; with scenes the counts
  differ by at most the size of the largest scene. Balance is by job count, not frames.
- Prompt-file rows are dealt by their prompt: the row goes to launch `blake2b(prompt) mod n`. The same
  prompt always lands in the same launch, so a prompt repeated in a file (or in two files with the same
  settings: the same job id) renders once, in one launch, with no coordination between launches; over
  many rows the shares are even to within a fraction of a percent (hashing, not counting).

Every launch walks the same stream and makes the same decisions, so the split is deterministic and
disjoint without any launch seeing another's; a decision needs only the n counters or the row's text, so
it streams (a prompt file is never held) and a launch skips building the jobs it does not own. Rows
appended to a prompts file keep the split of the rows before them. Must not read files or know the
manifest schema.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """One launch's part of an n-launch run (`shard=i/n`), `index` counted from 0."""

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

    def __str__(self) -> str:
        """The one spelling of this shard: `0/2`, whatever was typed (`00/2`, ` 0/2`)."""
        return f"{self.index}/{self.count}"

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
        """Whether this launch owns the next unit of `size` jobs; every launch calls it per unit, in order."""
        loads = self._loads
        low = min(loads)
        target = loads.index(low)  # the first launch with the fewest jobs: round-robin for size 1
        loads[target] = low + size
        return target == self._shard.index

    def take_prompt(self, prompt: str) -> bool:
        """Whether this launch owns a prompt-file row: by its prompt's hash, so repeats land together."""
        digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self._shard.count == self._shard.index

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
