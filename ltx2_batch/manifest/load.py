"""Opening a manifest: the one validation pass every manifest goes through before a run, its every problem
gathered into one `ManifestError`.

Owns `open_manifest` (read, parse, expand, validate, give every job its id: the run path's entry),
`validate_document` (the pass over an expanded document: one template validation per shape, name,
prompt and seed per job, prompt-file entries turned into streamed templates), the storyboard's scene
links, the checks across jobs (duplicate names, duplicate renders), and finding a manifest by name. The
file is read by `document.py`, input files by `resolver.py`, each job's fields by `job_rules.py`. Must
not import torch, Ray or Hydra, and must not fetch anything a URL points at.
Jobs of one entry that differ only in name, prompt or seed are validated once, as one template, and get
their ids through that template's `jobs.JobIdentity`. The validated manifest is a `stream.ManifestStream`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.families import spec as family_spec
from ltx2_batch.core.jobs import ChunkingSpec, JobIdentity, RenderJob, varied_job, with_job_id
from ltx2_batch.errors import ConfigError, FieldProblem, ManifestError
from ltx2_batch.manifest.document import parse_yaml, read_manifest_bytes
from ltx2_batch.manifest.expand import ExpandedJob, Expansion, expand_manifest
from ltx2_batch.manifest.job_rules import job_varying, parse_template
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.paths import InputRoots
from ltx2_batch.manifest.prompts import PLACEHOLDER, open_prompt_source
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import JobContext, Problem, Report, report_all
from ltx2_batch.manifest.resolver import InputCache
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer, chunk_count
from ltx2_batch.manifest.storyboard import is_storyboard, storyboard_jobs
from ltx2_batch.manifest.stream import ManifestStream, PromptTemplate
from ltx2_batch.manifest.suggest import unknown_keys
from ltx2_batch.manifest.values import expect, is_int
from ltx2_batch.manifest.vocabulary import TOP

MANIFEST_SUFFIXES = (".yaml", ".yml")


def _chaining_problems(chaining: ChainingConfig, source: str) -> list[FieldProblem]:
    """The chunk planner's own checks (8k+1 chunks, an overlap that leaves new frames), as problems."""
    try:
        chunk_count(chaining.window + 1, chaining.window, chaining.overlap_frames)
    except ConfigError as exc:
        return [FieldProblem(source, "chaining", str(exc))]
    return []


def _dedupe(problems: Iterable[FieldProblem]) -> list[FieldProblem]:
    """One line per (job, field, message): a sweep repeats a bad value across its expanded jobs."""
    first: dict[tuple[int | None, str, str], FieldProblem] = {}
    repeats: dict[tuple[int | None, str, str], int] = {}
    for p in problems:
        key = (p.job_index, p.field, p.message)
        if key in first:
            repeats[key] += 1
        else:
            first[key], repeats[key] = p, 0
    out = []
    for key, problem in first.items():
        suffix = f" (and {repeats[key]} more expanded job(s) of this entry)" if repeats[key] else ""
        out.append(dataclasses.replace(problem, message=problem.message + suffix))
    return out


def _duplicate_names(expanded: Iterable[ExpandedJob], source: str) -> list[FieldProblem]:
    """Expanded names must be unique: people find outputs and ledger rows by them."""
    first_of: dict[str, int] = {}
    out = []
    for job in expanded:
        if job.name in first_of:
            message = f"duplicate job name (also job {first_of[job.name]}); expanded names must be unique"
            out.append(FieldProblem(source, "name", message, job.source_index, job.name))
        else:
            first_of[job.name] = job.source_index
    return out


def _duplicate_renders(
    jobs: tuple[RenderJob, ...], sources: tuple[int, ...], source: str
) -> list[FieldProblem]:
    """Two jobs with one id would render (and overwrite) the same clip."""
    out = []
    by_id: dict[str, int] = {}
    for pos, job in enumerate(jobs):
        first = by_id.setdefault(job.job_id, pos)
        if first != pos:
            message = (
                f"renders exactly the same clip as {jobs[first].name!r} (same parameters, inputs and seed): "
                "give one a different seed or remove it"
            )
            out.append(FieldProblem(source, "seed", message, sources[pos], job.name))
    return out


def _prompt_template(
    expanded: ExpandedJob, ctx: JobContext, report: Report, base_dir: Path, roots: InputRoots
) -> PromptTemplate | None:
    """An entry with a `prompts` file: its template validated once (its prompt with a stand-in where each
    row's text goes), the file's header checked; its rows are read later, as the run streams them."""
    fields = {k: v for k, v in expanded.fields.items() if k != "prompts"}
    source, problems = open_prompt_source(expanded.fields["prompts"], base_dir, roots, ctx.limits)
    report_all(report, problems)
    template = fields.get("prompt", PLACEHOLDER)
    if not isinstance(template, str) or PLACEHOLDER not in template:
        report(
            "prompt",
            f"with `prompts:` the prompt is a template: put {PLACEHOLDER} where each row's text "
            f"goes (or leave it out), got {quote(template)}",
        )
        return None
    varying = job_varying({**fields, "prompt": template.replace(PLACEHOLDER, "placeholder")}, ctx, report)
    job = parse_template(fields, ctx, report)
    if job is None or varying is None or source is None:
        return None
    seed = fields.get("seed")
    explicit = seed if isinstance(seed, int) else None
    return PromptTemplate(expanded.name, fields, template, source, job, ctx, explicit)


@dataclass(frozen=True)
class ValidatedJobs:
    """Expanded, validated jobs (with ids when asked); `sources[i]` is job i's index in the manifest's `jobs`.

    Entries with a `prompts` file are not expanded here: they are `templates`, streamed later.
    """

    jobs: tuple[RenderJob, ...]
    sources: tuple[int, ...]
    templates: tuple[PromptTemplate, ...] = ()


@dataclass(frozen=True)
class _CheckedTemplate:
    """One template's validation, shared by every expanded job of its shape: the template (None when it
    has problems), its problems (reported again for each job that shares it) and its id maker."""

    job: RenderJob | None
    problems: tuple[Problem, ...]
    identity: JobIdentity | None


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
) -> ValidatedJobs:
    """Expand and validate a parsed manifest (input files are resolved and hashed); raises ManifestError.
    With a `model_fingerprint` every job also gets its id."""
    source = str(manifest_path)
    base_seed, expansion = _expand_checked(doc, source, chaining, limits)
    roots = InputRoots.for_manifest(manifest_path, paths, Path.cwd())
    ctx = JobContext(
        chunking=ChunkingSpec(
            chaining.window,
            chaining.overlap_frames,
            chaining.condition_on_last_frame,
            chaining.blend,
            chaining.adain,
        ),
        resolve=InputCache(roots, limits),
        base_seed=base_seed,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
    )
    problems: list[FieldProblem] = []
    jobs: list[RenderJob] = []
    sources: list[int] = []
    templates: list[PromptTemplate] = []
    # One validation per template: expanded jobs of an entry that differ only in name, prompt or seed
    # (a sweep over seeds) share it.
    checked: dict[tuple[object, ...], _CheckedTemplate] = {}
    for expanded in expansion.jobs:
        report = _reporter(problems, source, expanded)
        if "prompts" in expanded.fields:
            prompt_template = _prompt_template(expanded, ctx, report, Path(manifest_path).parent, roots)
            templates += [prompt_template] if prompt_template is not None else []
            continue
        template = _check_template(expanded, ctx, checked, model_fingerprint)
        report_all(report, template.problems)
        varying = job_varying(expanded.fields, ctx, report)
        if template.job is not None and varying is not None:
            name, prompt, seed = varying
            job_id = template.identity.job_id(prompt, seed) if template.identity is not None else ""
            jobs.append(
                varied_job(template.job, name=name, prompt=prompt, seed=seed, index=len(jobs), job_id=job_id)
            )
            sources.append(expanded.source_index)
    problems += _duplicate_names(expansion.jobs, source)
    if problems:
        raise ManifestError(_dedupe(problems))
    return ValidatedJobs(tuple(jobs), tuple(sources), tuple(templates))


def _expand_checked(
    doc: dict[str, Any], source: str, chaining: ChainingConfig, limits: Limits
) -> tuple[int, Expansion]:
    """(base seed, expansion) of a document whose shape is sound; raises ManifestError when it is not:
    shape problems make per-job messages noise (and chunk arithmetic impossible)."""
    problems = _chaining_problems(chaining, source)
    problems += [FieldProblem(source, k, m) for k, m in unknown_keys(doc, TOP)]
    base_seed = doc.get("base_seed", TOP["base_seed"].default)
    problem = expect(base_seed, "int")
    if problem:
        problems.append(FieldProblem(source, "base_seed", problem))
    expansion = expand_manifest(doc, limits.max_jobs)
    problems += [FieldProblem(source, f, m, i, n) for i, n, f, m in expansion.problems]
    if problems:
        raise ManifestError(problems)
    return (base_seed if is_int(base_seed) else 0), expansion


def _reporter(problems: list[FieldProblem], source: str, expanded: ExpandedJob) -> Report:
    """A `Report` that files each problem under the expanded job it was found in."""

    def report(field: str, message: str) -> None:
        problems.append(FieldProblem(source, field, message, expanded.source_index, expanded.name))

    return report


def _check_template(
    expanded: ExpandedJob,
    ctx: JobContext,
    checked: dict[tuple[object, ...], _CheckedTemplate],
    model_fingerprint: str | None,
) -> _CheckedTemplate:
    """The template of `expanded`, validated once per shape (`checked` remembers each shape's)."""
    known = checked.get(expanded.shape) if expanded.shape else None
    if known is not None:
        return known
    found: list[Problem] = []
    job = parse_template(expanded.fields, ctx, lambda field, message: found.append((field, message)))
    identity = (
        JobIdentity(job, model_fingerprint) if job is not None and model_fingerprint is not None else None
    )
    known = _CheckedTemplate(job, tuple(found), identity)
    if expanded.shape:
        checked[expanded.shape] = known
    return known


def open_manifest(
    path: str | Path,
    *,
    chaining: ChainingConfig,
    paths: PathsConfig,
    model_fingerprint: str,
    seed_override: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    weights: WeightsOffer = ANY_WEIGHTS,
) -> ManifestStream:
    """Read, expand and validate (prompt files: their header only); raises ManifestError listing every
    problem. Memory stays bounded by the YAML file, not by its prompt files. An unset
    `chaining.chunk_frames` is the window of the family the weights are for."""
    chaining = chaining.with_window(family_spec(weights.family).window_frames)
    source = str(path)
    data = read_manifest_bytes(path, limits)
    doc = parse_yaml(data, source, limits)
    sha = hashlib.sha256(data).hexdigest()
    if is_storyboard(doc):
        jobs = _storyboard(doc, path, chaining, paths, model_fingerprint, seed_override, limits, weights)
        return ManifestStream(source, sha, jobs, (), model_fingerprint)
    valid = validate_document(
        doc,
        path,
        chaining=chaining,
        paths=paths,
        seed_override=seed_override,
        model_fingerprint=model_fingerprint,
        limits=limits,
        weights=weights,
    )
    jobs = valid.jobs
    problems = _duplicate_renders(jobs, valid.sources, source)
    if problems:
        raise ManifestError(_dedupe(problems))
    return ManifestStream(source, sha, jobs, valid.templates, model_fingerprint)


def _storyboard(
    doc: dict[str, Any],
    path: str | Path,
    chaining: ChainingConfig,
    paths: PathsConfig,
    model_fingerprint: str,
    seed_override: int | None,
    limits: Limits = DEFAULT_LIMITS,
    weights: WeightsOffer = ANY_WEIGHTS,
) -> tuple[RenderJob, ...]:
    """Shots become ordinary jobs (same validation), then each is linked to the previous shot of its
    scene: its id covers the previous shot's id, so changing shot 1 re-renders the rest of the scene."""
    board, problems = storyboard_jobs(doc, str(path))
    if problems:
        raise ManifestError(problems)
    valid = validate_document(
        board.document,
        path,
        chaining=chaining,
        paths=paths,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
    )
    last_in_scene: dict[str, str] = {}
    jobs = []
    for job, position in zip(valid.jobs, valid.sources, strict=True):
        scene = board.scenes[position]
        linked = dataclasses.replace(job, scene=scene, after=last_in_scene.get(scene, ""))
        linked = with_job_id(linked, model_fingerprint)
        last_in_scene[scene] = linked.job_id
        jobs.append(linked)
    return tuple(jobs)


def resolve_manifest_path(name_or_path: str, manifests_dirs: Path | Sequence[Path]) -> Path:
    """`demo` -> the first `<dir>/demo.yaml` (or `.yml`) over `manifests_dirs` in order; `examples/sweep`
    works the same way; an existing file path is returned as given."""
    dirs = [manifests_dirs] if isinstance(manifests_dirs, Path) else list(manifests_dirs)
    given = Path(name_or_path)
    if given.is_file():
        return given
    if given.suffix not in MANIFEST_SUFFIXES and not given.is_absolute():
        for folder in dirs:
            for suffix in MANIFEST_SUFFIXES:
                candidate = folder / f"{name_or_path}{suffix}"
                if candidate.is_file():
                    return candidate
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.y*ml")})
    close = difflib.get_close_matches(given.stem, known, n=1)
    where = ", ".join(str(d) for d in dirs)
    hint = f"did you mean {close[0]!r}?" if close else f"known manifests in {where}: {', '.join(known)}"
    raise ManifestError([FieldProblem(name_or_path, "manifest", f"no manifest file found; {hint}")])
