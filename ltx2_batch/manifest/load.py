"""Manifest loading: the only module of `ltx2_batch.manifest` that touches the file system.

Owns reading and hashing the manifest, strict and bounded YAML parsing (duplicate keys, nesting deeper
than `limits.max_yaml_depth` and alias bombs rejected), resolving and hashing input files and checking
their content (`inputs.py`: image headers, a reference video's first frame; once per distinct path), job
ids, the checks across jobs (duplicate names, duplicate renders) and gathering every problem into one
`ManifestError`. Must not import torch, Ray or Hydra, and must not fetch anything a URL points at.
Just over 400 lines because the three entry shapes (jobs, prompt-file templates, storyboards) share the
one validation pass and its error gathering; splitting them would duplicate that pass.
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
from typing import TYPE_CHECKING, Any

import yaml

from ltx2_batch.core.jobs import (
    ChunkingSpec,
    JobIdentity,
    RenderJob,
    file_sha256,
    varied_job,
    with_job_id,
)
from ltx2_batch.errors import ConfigError, FieldProblem, ManifestError
from ltx2_batch.manifest.expand import ExpandedJob, expand_manifest
from ltx2_batch.manifest.inputs import audio_problem, image_problem, video_problem
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.paths import InputRoots, resolve_input_path
from ltx2_batch.manifest.prompts import PLACEHOLDER, open_prompt_source
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.schema import (
    TOP_KEYS,
    InputKind,
    JobContext,
    ResolvedInput,
    expect,
    job_varying,
    parse_template,
    unknown_keys,
)
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer, chunk_count
from ltx2_batch.manifest.storyboard import is_storyboard, storyboard_jobs
from ltx2_batch.manifest.stream import ManifestStream, PromptTemplate

if TYPE_CHECKING:  # config.py imports Hydra; the manifest core stays Hydra-free
    from ltx2_batch.config import ChainingConfig, PathsConfig

MANIFEST_SUFFIXES = (".yaml", ".yml")
_YAML_ERROR_CHARS = 2000  # a YAML error quotes the text it choked on: cut it to keep the message readable


@dataclass(frozen=True)
class ManifestPlan:
    source: str  # manifest path as given
    sha256: str  # of the manifest file bytes
    jobs: tuple[RenderJob, ...]  # each with job_id set


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last), nesting
    deeper than `limits.max_yaml_depth` (the composer recurses: 20000 levels would exhaust the stack) and
    aliases that expand the document by more than `limits.max_alias_nodes` nodes (an alias bomb: a few
    lines naming a list of lists ten times per level is millions of nodes to anything that walks it)."""

    limits: Limits = DEFAULT_LIMITS

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self._depth = 0
        self._literal = 0  # nodes written in the file
        self._expanded: dict[int, int] = {}  # id(node) -> nodes under it once aliases are expanded

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self._depth += 1
        if self._depth > self.limits.max_yaml_depth:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nesting deeper than {self.limits.max_yaml_depth} levels (limits.max_yaml_depth)",
                self.peek_event().start_mark,
            )
        alias = self.check_event(yaml.AliasEvent)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if not alias:
            self._literal += 1
        size = self._expanded.get(id(node))
        if size is None:
            if isinstance(node, yaml.SequenceNode):
                children: Iterable[yaml.Node] = node.value
            elif isinstance(node, yaml.MappingNode):
                children = (n for pair in node.value for n in pair)
            else:
                children = ()
            size = 1 + sum(self._expanded.get(id(child), 1) for child in children)
            self._expanded[id(node)] = size
        if size > self._literal + self.limits.max_alias_nodes:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand this document to over {size:,} nodes from {self._literal:,} written "
                f"(limit: {self.limits.max_alias_nodes:,} more, limits.max_alias_nodes); write the "
                "values out or use fewer nested aliases",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_manifest_bytes(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The manifest's bytes, refused before reading when the file is over `limits.max_manifest_bytes`."""
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(limits.max_manifest_bytes + 1)
    except OSError as exc:
        raise ManifestError([FieldProblem(source, "<file>", f"cannot read the manifest: {exc}")]) from exc
    return data  # parse_yaml refuses one byte over the limit


def parse_yaml(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    if len(data) > limits.max_manifest_bytes:
        message = (
            f"is {len(data):,} bytes, over the limit of {limits.max_manifest_bytes:,} "
            "(limits.max_manifest_bytes); move long prompt lists into a `prompts:` file"
        )
        raise ManifestError([FieldProblem(source, "<file>", message)])
    loader = _StrictLoader(data)
    loader.limits = limits
    try:
        doc = loader.get_single_data()
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of more than 4300 digits
        text = str(exc)
        text = text if len(text) < _YAML_ERROR_CHARS else text[:_YAML_ERROR_CHARS] + "..."
        raise ManifestError([FieldProblem(source, "<yaml>", f"not valid YAML: {text}")]) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else type(doc).__name__
        raise ManifestError(
            [FieldProblem(source, "<manifest>", f"must be a mapping with `jobs:`, got {got}")]
        )
    return doc


def _chaining_problems(chaining: ChainingConfig, source: str) -> list[FieldProblem]:
    """The chunk planner's own checks (8k+1 chunks, an overlap that leaves new frames), as problems."""
    try:
        chunk_count(chaining.window + 1, chaining.window, chaining.overlap_frames)
    except ConfigError as exc:
        return [FieldProblem(source, "chaining", str(exc))]
    return []


class _InputCache:
    """Resolves each distinct path string once, hashes each distinct real file once and checks each
    distinct (file, kind) once: an image's header, a reference video's first frame."""

    def __init__(self, roots: InputRoots, limits: Limits = DEFAULT_LIMITS) -> None:
        self._roots = roots
        self._limits = limits
        self._resolved: dict[tuple[str, InputKind], ResolvedInput] = {}
        self._digests: dict[str, str] = {}
        self._content: dict[tuple[str, InputKind], str | None] = {}

    def __call__(self, raw: str, kind: InputKind) -> ResolvedInput:
        key = (raw, kind)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(raw, kind)
        return self._resolved[key]

    def _resolve(self, raw: str, kind: InputKind) -> ResolvedInput:
        found = resolve_input_path(raw, self._roots, lora=kind is InputKind.LORA)
        if not found.ok:
            return ResolvedInput(error=found.error)
        if found.path not in self._digests:
            try:
                self._digests[found.path] = file_sha256(found.path)
            except OSError as exc:
                return ResolvedInput(error=f"cannot read {quote(raw)}: {exc}")
        if (found.path, kind) not in self._content:
            self._content[found.path, kind] = _content_problem(found.path, kind, self._limits)
        problem = self._content[found.path, kind]
        if problem:
            return ResolvedInput(error=f"{quote(raw)} {problem}")
        return ResolvedInput(found.path, self._digests[found.path])


def _content_problem(path: str, kind: InputKind, limits: Limits) -> str | None:
    if kind is InputKind.IMAGE:
        return image_problem(path, limits.max_image_pixels)
    if kind is InputKind.VIDEO:
        return video_problem(path, limits.max_image_pixels)
    if kind is InputKind.AUDIO:
        return audio_problem(path)
    return None  # LoRA files are read by the model loader, which names the file it cannot parse


def _dedupe(problems: Iterable[FieldProblem]) -> list[FieldProblem]:
    """One line per (job, field, message): a sweep repeats a bad value across its expanded jobs."""
    counts: dict[tuple[Any, ...], list[Any]] = {}
    for p in problems:
        key = (p.job_index, p.field, p.message)
        if key in counts:
            counts[key][1] += 1
        else:
            counts[key] = [p, 0]
    out = []
    for first, more in counts.values():
        suffix = f" (and {more} more expanded job(s) of this entry)" if more else ""
        out.append(dataclasses.replace(first, message=first.message + suffix))
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
    expanded: ExpandedJob, ctx: JobContext, report: Any, base_dir: Path, roots: InputRoots
) -> PromptTemplate | None:
    fields = {k: v for k, v in expanded.fields.items() if k != "prompts"}
    source, problems = open_prompt_source(expanded.fields["prompts"], base_dir, roots, ctx.limits)
    for field, message in problems:
        report(field, message)
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
    problems = _chaining_problems(chaining, source)
    problems += [FieldProblem(source, k, m) for k, m in unknown_keys(doc, TOP_KEYS)]
    base_seed = doc.get("base_seed", 0)
    if expect(base_seed, "int"):
        problems.append(FieldProblem(source, "base_seed", expect(base_seed, "int") or ""))
        base_seed = 0
    expansion = expand_manifest(doc, limits.max_jobs)
    problems += [FieldProblem(source, f, m, i, n) for i, n, f, m in expansion.problems]
    if problems:  # shape problems make per-job messages noise (and chunk arithmetic impossible)
        raise ManifestError(problems)
    roots = InputRoots.for_manifest(manifest_path, paths, Path.cwd())
    ctx = JobContext(
        chunking=ChunkingSpec(
            chaining.window,
            chaining.overlap_frames,
            chaining.condition_on_last_frame,
            chaining.blend,
            chaining.adain,
        ),
        resolve=_InputCache(roots, limits),
        base_seed=base_seed,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
    )
    jobs: list[RenderJob] = []
    sources: list[int] = []
    templates: list[PromptTemplate] = []
    # One validation per template: expanded jobs of an entry that differ only in name, prompt or seed
    # (a sweep over seeds) share it; its problems are reported again for each job that shares it.
    shapes: dict[tuple[Any, ...], tuple[RenderJob | None, list[tuple[str, str]], JobIdentity | None]] = {}
    for expanded in expansion.jobs:

        def report(field: str, message: str, _e: Any = expanded) -> None:
            problems.append(FieldProblem(source, field, message, _e.source_index, _e.name))

        if "prompts" in expanded.fields:
            template = _prompt_template(expanded, ctx, report, Path(manifest_path).parent, roots)
            templates += [template] if template is not None else []
            continue
        known = shapes.get(expanded.shape) if expanded.shape else None
        if known is None:
            found: list[tuple[str, str]] = []
            template = parse_template(expanded.fields, ctx, lambda f, m, _out=found: _out.append((f, m)))
            identity = None
            if template is not None and model_fingerprint is not None:
                identity = JobIdentity(template, model_fingerprint)
            known = template, found, identity
            if expanded.shape:
                shapes[expanded.shape] = known
        template, template_problems, identity = known
        for field, message in template_problems:
            report(field, message)
        varying = job_varying(expanded.fields, ctx, report)
        if template is not None and varying is not None:
            name, prompt, seed = varying
            job_id = identity.job_id(prompt, seed) if identity is not None else ""
            jobs.append(
                varied_job(template, name=name, prompt=prompt, seed=seed, index=len(jobs), job_id=job_id)
            )
            sources.append(expanded.source_index)
    problems += _duplicate_names(expansion.jobs, source)
    if problems:
        raise ManifestError(_dedupe(problems))
    return ValidatedJobs(tuple(jobs), tuple(sources), tuple(templates))


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
    problem. Memory stays bounded by the YAML file, not by its prompt files."""
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


def load_manifest(
    path: str | Path,
    *,
    chaining: ChainingConfig,
    paths: PathsConfig,
    model_fingerprint: str,
    seed_override: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    weights: WeightsOffer = ANY_WEIGHTS,
) -> ManifestPlan:
    """`open_manifest`, every job materialised (prompt files included): what the run path uses today."""
    stream = open_manifest(
        path,
        chaining=chaining,
        paths=paths,
        model_fingerprint=model_fingerprint,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
    )
    return ManifestPlan(source=stream.source, sha256=stream.sha256, jobs=tuple(stream.iter_jobs()))


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
