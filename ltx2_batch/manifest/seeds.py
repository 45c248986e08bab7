"""Which seed a job renders with: an explicit one, or one derived from the base seed and the job's fields.

Owns the seed rule (`job_seed`), its per-prompt form for prompt-file rows (`prompt_seeds`) and the seed
field's own check (`read_seed`, `seed_problem`). A derived seed covers every field but the name and tags,
so renaming or tagging a job keeps its clip. A CLI `seed=N` replaces the manifest's `base_seed` (the
loader puts it in `JobContext.base_seed`): it re-derives the seeds of jobs without their own and leaves
explicit seeds alone, so a job named `a__seed=1` renders with seed 1 under any override
(docs/behaviour.md, "Seeds"). Must not change how a seed is derived: seeds are part of job identity, and
the ids of existing outputs depend on them (`core.jobs.derive_seed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ltx2_batch.core.jobs import SeedRule, derive_seed
from ltx2_batch.manifest.reader import FieldReader, JobContext
from ltx2_batch.manifest.values import expect, is_int

MAX_SEED = 2**63 - 1


def seed_problem(value: object) -> str | None:
    """Why `value` cannot be a job's `seed`, or None (null: derive it)."""
    problem = expect(value, "int?")
    if problem:
        return problem
    if is_int(value) and not 0 <= value <= MAX_SEED:
        return f"must be in [0, 2**63 - 1], got {value}"
    return None


def read_seed(reader: FieldReader) -> int:
    """The job's seed: its own when valid (a range problem is reported), else derived."""
    seed = reader.integer("seed") if "seed" in reader.fields else None
    if seed is not None and not 0 <= seed <= MAX_SEED:
        reader.report("seed", f"must be in [0, 2**63 - 1], got {seed}")
    return job_seed(reader.fields, seed, reader.ctx)


def job_seed(fields: Mapping[str, object], explicit: int | None, ctx: JobContext) -> int:
    """The seed rule on a job's raw fields (shared with prompt-file expansion, which reuses a validated
    template and so must derive each row's seed exactly as a hand-written job with that prompt would)."""
    if explicit is not None:
        return explicit
    return derive_seed(ctx.base_seed, _seed_fields(fields))


def _seed_fields(fields: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in fields.items() if k not in ("name", "tags", "seed")}


def prompt_seeds(fields: Mapping[str, object], explicit: int | None, ctx: JobContext) -> Callable[[str], int]:
    """`job_seed` for jobs whose `fields` differ only in `prompt`, as a function of the prompt."""
    if explicit is not None:
        return lambda _prompt: explicit
    return SeedRule(ctx.base_seed, _seed_fields(fields)).seed
