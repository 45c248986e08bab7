"""A validated manifest's jobs, produced on demand: the one iterator every manifest reaches a run through.

Owns `ManifestStream` (held jobs, then each prompt file's rows), `PromptTemplate` (a validated entry
whose prompts come from a file) and the row-by-row expansion of a template (`template_jobs`), with this
launch's share picked by position before a job is built (`ltx2_batch.core.shard`). Must not validate or read
the manifest (`load.py` does) and imports no torch, Ray or Hydra; the only file it reads is a prompts file,
through `ltx2_batch.manifest.prompts`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from ltx2_batch.core.jobs import JobIdentity, RenderJob, varied_job
from ltx2_batch.core.shard import Shard, ShardDealer
from ltx2_batch.manifest.names import NAME_SEPARATOR
from ltx2_batch.manifest.prompts import PLACEHOLDER, PromptSource, iter_prompts
from ltx2_batch.manifest.reader import JobContext
from ltx2_batch.manifest.seeds import prompt_seeds


@dataclass(frozen=True)
class PromptTemplate:
    """A validated job entry (one sweep point of it) whose prompts come from a file: one job per row.

    Validated once (`job_rules.parse_template`); each row then only swaps prompt, name, seed and id in, so
    a million rows cost a million cheap copies, not a million validations.
    """

    name: str  # the expanded entry name; each job is `<name>__p<row>`
    fields: dict[str, object]  # the entry's raw fields without `prompts`
    template: str  # `prompt` with PLACEHOLDER where each row's text goes
    source: PromptSource
    job: RenderJob  # the entry's template (no name, prompt, seed or id)
    ctx: JobContext  # for the seed rule
    explicit_seed: int | None


def template_jobs(
    tpl: PromptTemplate,
    model_fingerprint: str,
    positions: Iterator[int] | None = None,
    dealer: ShardDealer | None = None,
) -> Iterator[RenderJob]:
    """The entry's jobs, one per prompt row, lazily, each with its id. A row's job equals (same id) the
    job a hand-written entry with that prompt would give. `positions` numbers the rows in the expanded
    manifest (`index`); with a `dealer`, rows another launch owns (by their prompt, core/shard.py) are read
    but not built."""
    identity = JobIdentity(tpl.job, model_fingerprint)
    seed_of = prompt_seeds(tpl.fields, tpl.explicit_seed, tpl.ctx)
    positions = positions if positions is not None else itertools.count()
    for row in iter_prompts(tpl.source):
        index = next(positions)
        prompt = tpl.template.replace(PLACEHOLDER, row.text)
        if dealer is not None and not dealer.take_prompt(prompt):
            continue
        seed = seed_of(prompt)
        yield varied_job(
            tpl.job,
            name=f"{tpl.name}{NAME_SEPARATOR}p{row.row}",
            prompt=prompt,
            seed=seed,
            index=index,
            job_id=identity.job_id(prompt, seed),
        )


@dataclass(frozen=True)
class ManifestStream:
    """A validated manifest whose jobs are produced on demand: the one way every manifest reaches a run.

    Hand-written (and storyboard) jobs are held: they are as many as the YAML file expands to, they were
    validated one template at a time and got their ids up front (two entries rendering the same clip
    are an error). Prompt-file entries are streamed row by row by `iter_jobs`.
    """

    source: str
    sha256: str
    jobs: tuple[RenderJob, ...]  # hand-written (and storyboard) jobs, each with job_id set
    templates: tuple[PromptTemplate, ...]
    model_fingerprint: str

    def iter_jobs(self, shard: Shard | None = None) -> Iterator[RenderJob]:
        """Every job with its id (or this launch's share of them, see `ltx2_batch.core.shard`): the held ones,
        then each prompt file's rows in manifest order.

        Duplicate rows (the same prompt twice in a file) give the same id; the scheduler renders it once.
        """
        dealer = shard.dealer() if shard is not None and shard.count > 1 else None
        yield from self.jobs if dealer is None else dealer.share(self.jobs)
        positions = itertools.count(len(self.jobs))
        for tpl in self.templates:
            yield from template_jobs(tpl, self.model_fingerprint, positions, dealer)

    def batches(self, shard: Shard | None, size: int) -> Iterator[list[RenderJob]]:
        """`iter_jobs` in batches: the held jobs (this launch's share) are one batch, as a hand-written
        manifest is planned as a whole; prompt-file rows follow `size` at a time."""
        held = len(self.jobs)
        batch: list[RenderJob] = []
        for job in self.iter_jobs(shard):
            streamed = job.index >= held
            if batch and (streamed != (batch[-1].index >= held) or (streamed and len(batch) >= size)):
                yield batch
                batch = []
            batch.append(job)
        if batch:
            yield batch
