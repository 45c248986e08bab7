"""Expansion: a parsed manifest document -> entries and their sweeps, counted before anything is built. Pure.

Owns defaults merging, the manifest-level and job-level sweeps applied in order (`sweep.py` reads each
one: grid, zip, dotted keys), readable unique names, the shape checks that must run once per manifest
rather than once per expanded job (unknown keys, a key swept at both levels) and the `limits.max_jobs`
cap, counted by arithmetic on the axes' lengths per block, per entry and in all, so an oversized sweep is
refused before one point of it exists. Expanded jobs are only ever produced lazily
(`Expansion.iter_jobs`). Must not read files or judge values: the validator (`validate.py`) does that,
one axis value or one template at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ltx2_batch.manifest.limits import DEFAULT_LIMITS
from ltx2_batch.manifest.names import MAX_NAME_CHARS, NAME_SEPARATOR, valid_name
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.suggest import unknown_keys
from ltx2_batch.manifest.sweep import Point, Sweep, read_sweep
from ltx2_batch.manifest.values import type_name
from ltx2_batch.manifest.vocabulary import JOB, NESTED_KEYS, NOT_IN_DEFAULTS

# A guard against a typo'd sweep (three 1000-value axes) eating memory before any message is printed.
MAX_EXPANDED_JOBS = DEFAULT_LIMITS.max_jobs
Problem4 = tuple[int | None, str | None, str, str]  # (entry index, entry name, field, message)


class ExpandedJob(NamedTuple):
    """One job after defaults and sweeps: `fields` holds raw manifest values (no `sweep` key). A named
    tuple, not a dataclass: a 100,000-job sweep builds one per job, and tuples are the cheapest to make."""

    source_index: int  # position in the manifest's `jobs` list (0-based)
    name: str
    fields: dict[str, Any]
    # Equal for two expanded jobs of one entry whose fields differ at most in name, prompt and seed
    # (`vocabulary.VARYING_FIELDS`): the validator checks such jobs once, as one template.
    shape: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One item of `jobs:` after defaults: its fields (`name` set, no `sweep`) and its own sweep."""

    index: int
    name: str
    base: dict[str, Any]
    sweep: Sweep = field(default_factory=Sweep)


@dataclass(frozen=True)
class Expansion:
    """A manifest's entries and sweeps, read and counted. `fatal`: problems that leave nothing sound to
    validate (no jobs list, a sweep over `limits.max_jobs`); other problems (unknown keys, a key that
    cannot be swept) are reported beside whatever the validator finds in the rest."""

    entries: tuple[Entry, ...] = ()
    top: Sweep = field(default_factory=Sweep)
    problems: tuple[Problem4, ...] = ()
    fatal: bool = False

    def entry_size(self, entry: Entry) -> int:
        """Expanded jobs of one entry: the manifest sweep's size times its own."""
        return self.top.size * entry.sweep.size

    @property
    def count(self) -> int:
        """Expanded jobs in all: arithmetic, nothing built."""
        return sum(self.entry_size(entry) for entry in self.entries)

    def iter_jobs(self) -> Iterator[ExpandedJob]:
        """Every expanded job, lazily: defaults, then the job, then the manifest sweep, then the job sweep.
        Shapes are tuples of value indices, so the validator's per-job template lookup hashes a few ints."""
        for entry in self.entries:
            own_parts = [
                (a, NAME_SEPARATOR.join(labels), shape) for a, labels, shape in entry.sweep.variants()
            ]
            for top_assign, top_labels, top_shape in self.top.variants():
                top_base = _apply(entry.base, top_assign)  # once per manifest-level point
                prefix = NAME_SEPARATOR.join((entry.name, *top_labels))
                for assignments, suffix, own_shape in own_parts:
                    fields = _apply(top_base, assignments) if assignments else dict(top_base)
                    fields["name"] = name = f"{prefix}{NAME_SEPARATOR}{suffix}" if suffix else prefix
                    yield ExpandedJob(entry.index, name, fields, (entry.index, top_shape, own_shape))

    def iter_names(self) -> Iterator[tuple[int, str]]:
        """(entry index, name) of every expanded job, in `iter_jobs` order, without building its fields."""
        for entry in self.entries:
            suffixes = [NAME_SEPARATOR.join(labels) for _a, labels, _s in entry.sweep.variants()]
            for _assign, top_labels, _shape in self.top.variants():
                prefix = NAME_SEPARATOR.join((entry.name, *top_labels))
                for suffix in suffixes:
                    yield entry.index, f"{prefix}{NAME_SEPARATOR}{suffix}" if suffix else prefix

    @property
    def jobs(self) -> tuple[ExpandedJob, ...]:
        """Every expanded job, held (tests and benchmarks; the loader streams `iter_jobs`)."""
        return tuple(self.iter_jobs())


def job_fields(entry: Entry, top: Sweep, top_point: Point, own_point: Point) -> dict[str, Any]:
    """The fields of one expanded job (without its name)."""
    return _apply(_apply(entry.base, top.assignments(top_point)), entry.sweep.assignments(own_point))


def job_name(entry: Entry, top: Sweep, top_point: Point, own_point: Point) -> str:
    """The expanded job's name: the entry's name, then both sweep points' labels (as `iter_jobs` names it)."""
    return NAME_SEPARATOR.join((entry.name, *top.labels(top_point), *entry.sweep.labels(own_point)))


def _merge(defaults: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """Job values win; mapping-valued fields (guider params, upscale, tags) merge one level deep."""
    merged = dict(defaults)
    for key, value in job.items():
        if key in NESTED_KEYS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _apply(base: dict[str, Any], assignments: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    fields = dict(base)
    for key, value in assignments:
        head, dot, sub = key.partition(".")
        if dot:
            inner = fields.get(head)
            fields[head] = {**(inner if isinstance(inner, dict) else {}), sub: value}
        else:
            fields[key] = value
    return fields


def _defaults(doc: Mapping[str, Any], problems: list[Problem4]) -> dict[str, Any]:
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append((None, None, "defaults", f"must be a mapping, got {type_name(defaults)}"))
        return {}
    allowed_defaults = [k for k in JOB if k not in NOT_IN_DEFAULTS]
    for key, unknown in unknown_keys(defaults, allowed_defaults):
        message = (
            f"{quote(key)} cannot be a default (names are per job; a manifest-wide sweep is at top level)"
            if key in NOT_IN_DEFAULTS
            else unknown
        )
        problems.append((None, None, f"defaults.{key}", message))
    return {k: v for k, v in defaults.items() if k in allowed_defaults}


def _entry(
    index: int, raw: dict[str, Any], defaults: Mapping[str, Any], top: Sweep
) -> tuple[Entry, list[Problem4]]:
    problems: list[Problem4] = []
    name = raw.get("name", f"job{index}")
    if not valid_name(name):
        why = (
            f"must be a non-empty string of at most {MAX_NAME_CHARS} characters without '/', '\\', "
            "control or bidi characters"
        )
        problems.append((index, None, "name", f"{why}, got {quote(name)}"))
        name = f"job{index}"
    problems += [(index, name, k, m) for k, m in unknown_keys(raw, list(JOB))]
    own, sweep_problems = read_sweep(raw.get("sweep"))
    problems += [(index, name, f, m) for f, m in sweep_problems]
    top_keys = {axis.key for axis in top.axes}
    twice = [axis for axis in own.axes if axis.key in top_keys]
    for axis in twice:
        problems.append((index, name, f"sweep.{axis.key}", "also swept at manifest level; sweep it once"))
    if twice:
        keep = (
            tuple(a for a in own.grid if a.key not in top_keys),
            tuple(a for a in own.zipped if a.key not in top_keys),
        )
        own = Sweep(*keep)
    base = _merge(defaults, {k: v for k, v in raw.items() if k != "sweep"})
    base["name"] = name
    return Entry(index, name, base, own), problems


def expand_manifest(doc: Mapping[str, Any], max_jobs: int = MAX_EXPANDED_JOBS) -> Expansion:
    """Read the document's defaults, sweeps and entries and count what they expand to; nothing is built
    (`Expansion.iter_jobs` does that, lazily)."""
    problems: list[Problem4] = []
    defaults = _defaults(doc, problems)
    top, sweep_problems = read_sweep(doc.get("sweep"))
    problems += [(None, None, f, m) for f, m in sweep_problems]
    raw_jobs = doc.get("jobs")
    fatal = False
    if not isinstance(raw_jobs, list) or not raw_jobs:
        problems.append((None, None, "jobs", f"must be a non-empty list of jobs, got {quote(raw_jobs)}"))
        raw_jobs, fatal = [], True
    entries = []
    for index, raw in enumerate(raw_jobs):
        if not isinstance(raw, dict):
            problems.append((index, None, "<job>", f"must be a mapping of job fields, got {type_name(raw)}"))
            continue
        entry, entry_problems = _entry(index, raw, defaults, top)
        problems += entry_problems
        entries.append(entry)
    counted = count_problems(Expansion(tuple(entries), top), max_jobs)
    if fatal or counted:  # nothing to expand: the entries are dropped, so nothing can build them
        return Expansion(problems=tuple(problems + counted), fatal=True)
    return Expansion(tuple(entries), top, tuple(problems))


def count_problems(expansion: Expansion, max_jobs: int) -> list[Problem4]:
    """The `limits.max_jobs` cap, by arithmetic on the axes' lengths: each grid, each sweep (grid x zip),
    each entry (its sweep x the manifest's) and the manifest in all."""
    over = f"over the limit of {max_jobs:,}; sweep fewer values, split the manifest or raise limits.max_jobs"
    out: list[Problem4] = []
    sweeps: list[tuple[int | None, str | None, Sweep]] = [(None, None, expansion.top)]
    sweeps += [(e.index, e.name, e.sweep) for e in expansion.entries]
    for index, name, sweep in sweeps:
        if not sweep.axes:
            continue
        if sweep.grid_size > max_jobs:
            out.append((index, name, "sweep.grid", f"expands to {sweep.grid_size:,} points, {over}"))
        elif sweep.size > max_jobs:
            detail = f"grid ({sweep.grid_size:,} points) times zip ({sweep.rows:,} rows)"
            out.append((index, name, "sweep", f"{detail} is {sweep.size:,} jobs, {over}"))
    if out:
        return out
    for entry in expansion.entries:
        size = expansion.entry_size(entry)
        if size > max_jobs and entry.sweep.axes and expansion.top.axes:
            detail = f"its sweep ({entry.sweep.size:,} points) times the manifest's ({expansion.top.size:,})"
            out.append((entry.index, entry.name, "sweep", f"{detail} is {size:,} jobs, {over}"))
    total = expansion.count
    if not out and total > max_jobs:
        largest = sorted(expansion.entries, key=expansion.entry_size, reverse=True)[:3]
        detail = ", ".join(f"{e.name}: {expansion.entry_size(e):,}" for e in largest)
        more = ", ..." if len(expansion.entries) > len(largest) else ""
        out.append((None, None, "jobs", f"the manifest expands to {total:,} jobs ({detail}{more}), {over}"))
    return out
