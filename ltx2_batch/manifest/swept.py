"""Swept values checked one axis at a time, before any combination of a sweep is built.

Owns `value_alone_problems` (what a value has wrong whatever the rest of its job holds: its kind, its
maximum, its own range, the files it names) and `check_axes`, which runs it over every value of every
axis of a manifest's sweeps and returns the values that failed, so the validator walks only the
combinations of the good ones. Its cost is the sum of the axes' lengths, not their product: one bad value
among 2,000,000 sweep points is refused after 3,000 cheap checks. A rule that depends on other fields (a
width on the two-stage grid, a frame count on the 8k+1 grid) is not applied here but on each template
(`job_rules.parse_template`). Must not build expanded jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.manifest import media_sections, sections
from ltx2_batch.manifest.expand import Expansion
from ltx2_batch.manifest.job_rules import SETTINGS, read_setting, requested_pipeline
from ltx2_batch.manifest.limits import Limits, text_problem
from ltx2_batch.manifest.problems import ProblemLog
from ltx2_batch.manifest.reader import FieldReader, JobContext, Problem
from ltx2_batch.manifest.seeds import MAX_SEED, seed_problem
from ltx2_batch.manifest.sweep import Sweep
from ltx2_batch.manifest.values import expect

# axis `where` (sweep.grid.width) -> indices of its values that failed on their own
BadValues = dict[str, set[int]]


def prompt_problem(value: object, limits: Limits) -> str | None:
    """Why `value` cannot be a job's prompt, whatever else the job holds, or None."""
    problem = expect(value, "str")
    if problem or not isinstance(value, str):
        return problem
    if not value.strip():
        return "is empty; describe the clip to render"
    return text_problem(value, limits)


def _setting(key: str) -> Callable[[FieldReader], object]:
    return lambda reader: read_setting(reader, key)


def _retake(reader: FieldReader) -> object:
    return media_sections.retake(reader, reader.ctx.weights.kind is CheckpointKind.dev)


# How each non-varying job field is read on its own (the readers report into a FieldReader).
_READERS: dict[str, Callable[[FieldReader], object]] = {
    **{key: _setting(key) for key in SETTINGS if key != "pipeline"},
    "pipeline": lambda reader: requested_pipeline(reader, reader.text("pipeline")),
    "video_guider_params": lambda reader: sections.guider(reader, "video_guider_params"),
    "audio_guider_params": lambda reader: sections.guider(reader, "audio_guider_params"),
    "upscale": sections.upscale,
    "images": lambda reader: sections.images(reader, "images", reader.fields["images"]),
    "loras": sections.loras,
    "video_conditioning": sections.videos,
    "audio_conditioning": lambda reader: media_sections.audio_input(reader, None),
    "retake": _retake,
    "tags": sections.tags,
}


def value_alone_problems(key: str, value: object, ctx: JobContext) -> list[Problem]:
    """The problems of `value` at the (possibly dotted) job field `key` that hold in any job: fields as
    the readers name them (`images[0].path`). Fields without such rules (name, the chunk fields) give
    none here; their template check judges them."""
    head, dot, sub = key.partition(".")
    if key == "prompt":
        problem = prompt_problem(value, ctx.limits)
        return [(key, problem)] if problem else []
    if key == "seed":
        if type(value) is int and 0 <= value <= MAX_SEED:  # the common case, without the kind machinery
            return []
        problem = seed_problem(value)
        return [(key, problem)] if problem else []
    read = _READERS.get(head)
    if read is None:
        return []
    found: list[Problem] = []
    fields = {head: {sub: value}} if dot else {key: value}
    read(FieldReader(fields, lambda field, message: found.append((field, message)), ctx))
    return [(f, m) for f, m in found if f == key or f.startswith((f"{key}.", f"{key}["))]


def _check_sweep(
    sweep: Sweep, ctx: JobContext, log: ProblemLog, index: int | None, name: str | None
) -> BadValues:
    bad: BadValues = {}
    for axis in sweep.axes:
        for i, value in enumerate(axis.values):
            problems = value_alone_problems(axis.key, value, ctx)
            for field, message in problems:
                log.add(f"{axis.where}[{i}]{field[len(axis.key) :]}", message, index, name)
            if problems:
                bad.setdefault(axis.where, set()).add(i)
    return bad


def check_axes(
    expansion: Expansion, ctx: JobContext, log: ProblemLog
) -> tuple[BadValues, Mapping[int, BadValues]]:
    """Every swept value on its own, each reported at its place in the file (`sweep.grid.width[3]`):
    the bad values of the manifest's sweep, and of each entry's own sweep by entry index."""
    top = _check_sweep(expansion.top, ctx, log, None, None)
    own = {
        e.index: _check_sweep(e.sweep, ctx, log, e.index, e.name) for e in expansion.entries if e.sweep.axes
    }
    return top, own
