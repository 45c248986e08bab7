"""Validating a parsed manifest document: every problem found in bounded time and memory, then its jobs.

Owns `validate_document`, four passes over the document:

1. its shape, read and counted (`expand.py`): unknown keys, sweep structure, the `limits.max_jobs` cap by
   arithmetic. Only a problem that leaves nothing sound to validate (no jobs list, a sweep over the cap)
   stops here; the rest are reported beside what the later passes find.
2. each swept value on its own (`swept.py`): cost the sum of the axes' lengths.
3. each distinct template once (`job_rules.parse_template`), walking only the combinations of the values
   that passed 2 (`Sweep.shape_points`): name, prompt and seed axes do not multiply it. Templates are kept
   for 4 only while nothing has been reported, so a refused manifest holds no templates.
4. the expanded jobs, streamed (`Expansion.iter_jobs`): duplicate names (unless 2 found bad values: the
   names change once they are fixed), and, when nothing was reported, each job's name, prompt, seed and id.

Jobs of one entry that differ only in name, prompt or seed share one template and get their ids through
its `jobs.JobIdentity`. Every problem goes into one `ProblemLog`: the first ones listed, the rest counted.
Must not read the manifest file (`load.py` does) nor import torch, Ray or Hydra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.jobs import ChunkingSpec, JobIdentity, RenderJob, varied_job
from ltx2_batch.errors import ConfigError, FieldProblem
from ltx2_batch.manifest.expand import Entry, Expansion, expand_manifest, job_fields, job_name
from ltx2_batch.manifest.job_rules import job_varying, parse_template
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.paths import InputRoots
from ltx2_batch.manifest.problems import ProblemLog
from ltx2_batch.manifest.prompts import PLACEHOLDER, PromptSource, open_prompt_source
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import JobContext, Report, report_all
from ltx2_batch.manifest.resolver import InputCache
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer, chunk_count
from ltx2_batch.manifest.stream import PromptTemplate
from ltx2_batch.manifest.suggest import unknown_keys
from ltx2_batch.manifest.swept import BadValues, check_axes
from ltx2_batch.manifest.values import expect, is_int
from ltx2_batch.manifest.vocabulary import TOP, VARYING_FIELDS


@dataclass(frozen=True)
class ValidatedJobs:
    """Expanded, validated jobs (with ids when asked); `sources[i]` is job i's index in the manifest's `jobs`.

    Entries with a `prompts` file are not expanded here: they are `templates`, streamed later.
    """

    jobs: tuple[RenderJob, ...]
    sources: tuple[int, ...]
    templates: tuple[PromptTemplate, ...] = ()


@dataclass(frozen=True)
class _Checked:
    """One template's validation, shared by every expanded job of its shape: the template and its id maker
    (a prompts entry: also its file, opened and checked)."""

    job: RenderJob
    identity: JobIdentity | None
    source: PromptSource | None = None
    prompt_template: str = ""


Shape = tuple[Any, ...]


def validate_document(
    doc: dict[str, Any],
    manifest_path: str | Path,
    *,
    chaining: ChainingConfig,
    paths: PathsConfig,
    seed_override: int | None = None,
    model_fingerprint: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    weights: WeightsOffer = ANY_WEIGHTS,
    problems: Sequence[FieldProblem] = (),
) -> ValidatedJobs:
    """Expand and validate a parsed manifest (input files are resolved and hashed); raises ManifestError.
    With a `model_fingerprint` every job also gets its id. `seed_override` (the CLI's `seed=N`) replaces
    the manifest's `base_seed`. `problems` found before (a storyboard's) are reported with the rest."""
    log = ProblemLog(str(manifest_path))
    for problem in problems:
        log.add_problem(problem)
    base_seed, expansion = _expand_checked(doc, chaining, limits, log)
    roots = InputRoots.for_manifest(manifest_path, paths, Path.cwd(), weights.models_root or None)
    ctx = JobContext(
        chunking=ChunkingSpec(
            chaining.window,
            chaining.overlap_frames,
            chaining.condition_on_last_frame,
            chaining.blend,
            chaining.adain,
        ),
        resolve=InputCache(roots, limits, weights.lora_check),
        base_seed=base_seed if seed_override is None else seed_override,
        limits=limits,
        weights=weights,
    )
    bad_top, bad_own = check_axes(expansion, ctx, log)
    values_sound = not log
    walk = _TemplateWalk(ctx, log, model_fingerprint, Path(manifest_path).parent, roots)
    for entry in expansion.entries:
        walk.entry(expansion, entry, bad_top, bad_own.get(entry.index, {}))
    if not values_sound:
        raise log.error()
    _duplicate_names(expansion, log)
    if log:
        raise log.error()
    return _jobs(expansion, walk.kept, ctx, log)


def _expand_checked(
    doc: dict[str, Any], chaining: ChainingConfig, limits: Limits, log: ProblemLog
) -> tuple[int, Expansion]:
    """(base seed, expansion) of the document; its shape problems are logged, and raised at once when
    nothing sound is left to validate (no jobs list, a sweep over the cap, an impossible chaining config)."""
    fatal = False
    try:
        chunk_count(chaining.window + 1, chaining.window, chaining.overlap_frames)
    except ConfigError as exc:
        log.add("chaining", str(exc))
        fatal = True
    for key, message in unknown_keys(doc, TOP):
        log.add(key, message)
    base_seed = doc.get("base_seed", TOP["base_seed"].default)
    problem = expect(base_seed, "int")
    if problem:
        log.add("base_seed", problem)
    expansion = expand_manifest(doc, limits.max_jobs)
    for index, name, field, message in expansion.problems:
        log.add(field, message, index, name)
    if fatal or expansion.fatal:
        raise log.error()
    return (base_seed if is_int(base_seed) else 0), expansion


class _TemplateWalk:
    """Pass 3: each distinct template of each entry validated once; kept (by shape) while none failed."""

    def __init__(
        self, ctx: JobContext, log: ProblemLog, fingerprint: str | None, base_dir: Path, roots: InputRoots
    ) -> None:
        self.ctx, self.log, self.fingerprint = ctx, log, fingerprint
        self.base_dir, self.roots = base_dir, roots
        self.kept: dict[Shape, _Checked] = {}

    def entry(self, expansion: Expansion, entry: Entry, bad_top: BadValues, bad_own: BadValues) -> None:
        """Validate each distinct template of `entry`, walking only the points whose swept values passed; each
        problem counts the expanded jobs that share the template."""
        top, own = expansion.top, entry.sweep
        swept = {axis.key for axis in top.axes + own.axes}
        first = True
        for top_point, top_count in top.shape_points(bad_top):
            for own_point, own_count in own.shape_points(bad_own):  # a generator per top point: no list
                fields = job_fields(entry, top, top_point, own_point)
                fields["name"] = name = job_name(entry, top, top_point, own_point)
                report = self.log.reporter(entry.index, name, top_count * own_count - 1)
                checked = self._check(fields, report, first, swept)
                first = False
                if checked is not None and not self.log:
                    self.kept[(entry.index, top.shape(top_point), own.shape(own_point))] = checked
                elif self.log:
                    self.kept.clear()  # a refused manifest keeps no templates

    def _check(self, fields: dict[str, Any], report: Report, first: bool, swept: set[str]) -> _Checked | None:
        if "prompts" in fields:
            return self._prompts_entry(fields, report)
        if first:  # the entry's own name, prompt and seed; swept ones were checked value by value
            unswept = _filtered(report, {k for k in VARYING_FIELDS if k in swept})
            job_varying(fields, self.ctx, unswept)
        job = parse_template(fields, self.ctx, report)
        if job is None:
            return None
        identity = JobIdentity(job, self.fingerprint) if self.fingerprint is not None else None
        return _Checked(job, identity)

    def _prompts_entry(self, fields: dict[str, Any], report: Report) -> _Checked | None:
        """An entry with a `prompts` file: its template validated once (its prompt with a stand-in where each
        row's text goes), the file's header checked; its rows are read later, as the run streams them."""
        source, problems = open_prompt_source(fields["prompts"], self.base_dir, self.roots, self.ctx.limits)
        report_all(report, problems)
        rest = {k: v for k, v in fields.items() if k != "prompts"}
        template = rest.get("prompt", PLACEHOLDER)
        if not isinstance(template, str) or PLACEHOLDER not in template:
            report(
                "prompt",
                f"with `prompts:` the prompt is a template: put {PLACEHOLDER} where each row's text "
                f"goes (or leave it out), got {quote(template)}",
            )
            return None
        varying = job_varying(
            {**rest, "prompt": template.replace(PLACEHOLDER, "placeholder")}, self.ctx, report
        )
        job = parse_template(rest, self.ctx, report)
        if job is None or varying is None or source is None:
            return None
        identity = JobIdentity(job, self.fingerprint) if self.fingerprint is not None else None
        slots = template.count(PLACEHOLDER)  # each row's prompt length: arithmetic, checked as rows stream
        source = dataclasses.replace(
            source, slots=slots, fixed_chars=len(template) - slots * len(PLACEHOLDER)
        )
        return _Checked(job, identity, source, template)


def _filtered(report: Report, skip: set[str]) -> Report:
    def filtered(field: str, message: str) -> None:
        """Pass the problem on unless its field is one to skip."""
        if field not in skip:
            report(field, message)

    return filtered


def _duplicate_names(expansion: Expansion, log: ProblemLog) -> None:
    """Expanded names must be unique: people find outputs and ledger rows by them."""
    first_of: dict[str, int] = {}
    for index, name in expansion.iter_names():
        if name in first_of:
            message = f"duplicate job name (also job {first_of[name]}); expanded names must be unique"
            log.add("name", message, index, name)
        else:
            first_of[name] = index


def _jobs(
    expansion: Expansion, kept: dict[Shape, _Checked], ctx: JobContext, log: ProblemLog
) -> ValidatedJobs:
    """Pass 4: every expanded job from its shape's template, with its name, prompt, seed and id."""
    jobs: list[RenderJob] = []
    sources: list[int] = []
    templates: list[PromptTemplate] = []
    at: list[Any] = [None, None]  # the job being built: one reporter for all (this loop runs per job)

    def report(field: str, message: str) -> None:
        """File the problem under the job being built."""
        log.add(field, message, at[0], at[1])

    for expanded in expansion.iter_jobs():
        at[0], at[1] = expanded.source_index, expanded.name
        checked = kept[expanded.shape]
        if checked.source is not None:
            fields = {k: v for k, v in expanded.fields.items() if k != "prompts"}
            seed = fields.get("seed")
            explicit = seed if is_int(seed) else None
            templates.append(
                PromptTemplate(
                    expanded.name, fields, checked.prompt_template, checked.source, checked.job, ctx, explicit
                )
            )
            continue
        varying = job_varying(expanded.fields, ctx, report)
        if varying is not None:
            name, prompt, seed = varying
            job_id = checked.identity.job_id(prompt, seed) if checked.identity is not None else ""
            jobs.append(
                varied_job(checked.job, name=name, prompt=prompt, seed=seed, index=len(jobs), job_id=job_id)
            )
            sources.append(expanded.source_index)
    log.raise_if_any()
    return ValidatedJobs(tuple(jobs), tuple(sources), tuple(templates))
