"""Opening a manifest: read, parse, validate, give every job its id; every problem in one `ManifestError`.

Owns `open_manifest` (the run path's entry), the storyboard's scene links, the check across validated
jobs (two jobs rendering the same clip, naming the field their recipe ignores when that is why), and
finding a manifest by name (`resolve_manifest_path`, which refuses a folder or a FIFO by what it is). The
file is read by `document.py`, validated by `validate.py`. Must not import torch, Ray or Hydra, and must
not fetch anything a URL points at. The validated manifest is a `stream.ManifestStream`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.families import spec as family_spec
from ltx2_batch.core.jobs import RenderJob, with_job_id
from ltx2_batch.errors import FieldProblem, ManifestError
from ltx2_batch.manifest.document import not_a_file, parse_yaml, read_manifest_bytes
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.problems import ProblemLog
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer
from ltx2_batch.manifest.storyboard import is_storyboard, storyboard_jobs
from ltx2_batch.manifest.stream import ManifestStream
from ltx2_batch.manifest.validate import ValidatedJobs, validate_document

__all__ = ["ValidatedJobs", "open_manifest", "resolve_manifest_path", "validate_document"]

MANIFEST_SUFFIXES = (".yaml", ".yml")


_NOT_RENDER_FIELDS = frozenset({"name", "tags", "index", "job_id", "scene", "after"})


def ignored_differences(first: RenderJob, other: RenderJob) -> list[tuple[str, object, object]]:
    """(dotted field, value in `other`, value in `first`) where two jobs with one id differ: each is a field
    their recipe does not use (or the ids would differ)."""
    out: list[tuple[str, object, object]] = []

    def walk(path: str, mine: object, theirs: object) -> None:
        """Record every leaf where `mine` and `theirs` differ, going into dataclass fields by dotted path."""
        if dataclasses.is_dataclass(mine) and dataclasses.is_dataclass(theirs) and type(mine) is type(theirs):
            for f in dataclasses.fields(mine):
                walk(f"{path}.{f.name}" if path else f.name, getattr(mine, f.name), getattr(theirs, f.name))
        elif mine != theirs:
            out.append((path, mine, theirs))

    for f in dataclasses.fields(first):
        if f.name not in _NOT_RENDER_FIELDS:
            walk(f.name, getattr(other, f.name), getattr(first, f.name))
    return out


def _duplicate_renders(jobs: tuple[RenderJob, ...], sources: tuple[int, ...], log: ProblemLog) -> None:
    """Two jobs with one id would render (and overwrite) the same clip. When they differ in fields their
    recipe does not use (a guidance sweep on the distilled recipe), the refusal names those fields."""
    by_id: dict[str, int] = {}
    for pos, job in enumerate(jobs):
        first = by_id.setdefault(job.job_id, pos)
        if first == pos:
            continue
        unused = ignored_differences(jobs[first], job)
        if unused:
            field, mine, theirs = unused[0]
            kind = job.pipeline.value
            message = (
                f"renders exactly the same clip as {jobs[first].name!r}: pipeline {kind} does not use "
                f"{field} ({quote(mine)} here, {quote(theirs)} there), so the two differ only in what the "
                f"recipe ignores; sweep or set a field {kind} uses, or remove {field}"
            )
        else:
            field = "seed"
            message = (
                f"renders exactly the same clip as {jobs[first].name!r} (same parameters, inputs and seed): "
                "give one a different seed or remove it"
            )
        log.add(field, message, sources[pos], job.name)


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
    log = ProblemLog(source)
    _duplicate_renders(valid.jobs, valid.sources, log)
    log.raise_if_any()
    return ManifestStream(source, sha, valid.jobs, valid.templates, model_fingerprint)


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
    board, problems = storyboard_jobs(doc, str(path), limits)
    if problems and not board.document["jobs"]:  # no usable shot: "jobs" would only confuse
        raise ManifestError(problems)
    valid = validate_document(
        board.document,
        path,
        chaining=chaining,
        paths=paths,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
        problems=problems,  # reported with what validating the shots finds
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
    works the same way; an existing file path is returned as given. A folder, a FIFO or a device is
    refused by what it is (never opened: reading a FIFO would block)."""
    dirs = [manifests_dirs] if isinstance(manifests_dirs, Path) else list(manifests_dirs)
    given = Path(name_or_path)
    if given.is_file():
        return given
    if given.exists():
        raise ManifestError([FieldProblem(name_or_path, "manifest", not_a_file(given))])
    if given.suffix not in MANIFEST_SUFFIXES and not given.is_absolute():
        for folder in dirs:
            for suffix in MANIFEST_SUFFIXES:
                candidate = folder / f"{name_or_path}{suffix}"
                if candidate.is_file():
                    return candidate
            if (folder / name_or_path).is_dir():
                inside = sorted(p.stem for p in (folder / name_or_path).glob("*.y*ml") if p.is_file())
                listed = ", ".join(f"{name_or_path}/{stem}" for stem in inside) or "none"
                message = f"is a folder of manifests ({folder / name_or_path}); pick one: {listed}"
                raise ManifestError([FieldProblem(name_or_path, "manifest", message)])
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.y*ml") if p.is_file()})
    close = difflib.get_close_matches(given.stem, known, n=1)
    where = ", ".join(str(d) for d in dirs)
    hint = f"did you mean {close[0]!r}?" if close else f"known manifests in {where}: {', '.join(known)}"
    raise ManifestError([FieldProblem(name_or_path, "manifest", f"no manifest file found; {hint}")])
