"""Sweep expansion: a parsed manifest document -> a flat list of expanded job field dicts. Pure.

Owns defaults merging, `grid` (cartesian product) and `zip` (advanced together) sweeps at manifest and
job level, dotted sweep keys (`upscale.temporal`), readable unique name suffixes, and the shape checks
that must run once per manifest rather than once per expanded job (unknown keys, which keys may be swept,
sweep structure). Must not read files or judge values: `job_rules` does that on each expanded job.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ltx2_batch.manifest.limits import DEFAULT_LIMITS
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.suggest import suggest, unknown_keys
from ltx2_batch.manifest.values import type_name
from ltx2_batch.manifest.vocabulary import JOB, NESTED_KEYS, NOT_IN_DEFAULTS, NOT_SWEPT, SWEEP, VARYING_FIELDS

NAME_SEPARATOR = "__"
# A guard against a typo'd sweep (three 1000-value axes) eating memory before any message is printed.
MAX_EXPANDED_JOBS = DEFAULT_LIMITS.max_jobs
MAX_NAME_CHARS = 200
_VALID_NAME = re.compile(r"^[^/\\\x00-\x1f]+$")
_INLINE_LABEL = re.compile(r"^[A-Za-z0-9._+-]{1,24}$")
# Control (Cc), format (Cf: bidi overrides, zero-width joiners) and line/paragraph separators: a name
# holding one prints differently from what it is (a bidi override reverses the rest of a log line).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def valid_name(name: object) -> bool:
    """Names may end up in file names and log lines: no separators, control or bidi characters, `.` or
    `..`, at most MAX_NAME_CHARS characters."""
    return (
        isinstance(name, str)
        and name not in (".", "..")
        and len(name) <= MAX_NAME_CHARS
        and bool(_VALID_NAME.match(name))
        and not any(unicodedata.category(c) in _HIDDEN_CATEGORIES for c in name)
    )


class ExpandedJob(NamedTuple):
    """One job after defaults and sweeps: `fields` holds raw manifest values (no `sweep` key). A named
    tuple, not a dataclass: a 100,000-job sweep builds one per job, and tuples are the cheapest to make."""

    source_index: int  # position in the manifest's `jobs` list (0-based)
    name: str
    fields: dict[str, Any]
    # Equal for two expanded jobs of one entry whose fields differ at most in name, prompt and seed
    # (`vocabulary.VARYING_FIELDS`): the loader validates such jobs once, as one template.
    shape: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Expansion:
    jobs: tuple[ExpandedJob, ...]
    problems: tuple[tuple[int | None, str | None, str, str], ...] = field(
        default=()
    )  # (index, name, field, msg)


@dataclass(frozen=True)
class Variant:
    """One point of a sweep: the values to set and the name parts that label it."""

    assignments: tuple[tuple[str, Any], ...]
    labels: tuple[str, ...]
    shape: tuple[Any, ...] = ()  # the assignments outside VARYING_FIELDS, hashable (see `frozen`)


def frozen(value: Any) -> Any:
    """A hashable stand-in for a manifest value that is equal only for equal values of equal types
    (`1`, `1.0` and `true` stay apart: the validator judges them differently)."""
    if isinstance(value, dict):
        return (dict, tuple((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (list, tuple(frozen(v) for v in value))
    return (type(value), value)


def _shape(assignments: tuple[tuple[str, Any], ...]) -> tuple[Any, ...]:
    return tuple((k, frozen(v)) for k, v in assignments if k not in VARYING_FIELDS)


def _label(key: str, value: object, position: int) -> str:
    """`seed=3` for short plain values, `prompt#2` (0-based position in the list) for the rest."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if isinstance(value, (str, int, float)) and _INLINE_LABEL.match(text):
        return f"{key}={text}"
    return f"{key}#{position}"


def _block_variants(values: Mapping[str, list[Any]], zipped: bool) -> list[Variant]:
    """Variants of one block. A swept `name` replaces the labels of its own axis (grid) or row (zip).

    Labels use the last part of a dotted key (`cfg_scale=4`) unless two keys of the block share it.
    """
    keys = list(values)
    leaves = [k.rpartition(".")[2] for k in keys]
    short = dict(zip(keys, leaves if len(set(leaves)) == len(leaves) else keys, strict=True))
    if zipped:
        rows = zip(*(values[k] for k in keys), strict=True)
        indexed: Iterator[tuple[tuple[int, Any], ...]] = (
            tuple((i, v) for v in row) for i, row in enumerate(rows)
        )
    else:
        indexed = itertools.product(*(list(enumerate(values[k])) for k in keys))
    out = []
    for combo in indexed:
        assignments = tuple((k, v) for k, (_, v) in zip(keys, combo, strict=True))
        if zipped and "name" in keys:
            labels: tuple[str, ...] = (str(values["name"][combo[0][0]]),)
        else:
            labels = tuple(
                str(v) if k == "name" else _label(short[k], v, i)
                for k, (i, v) in zip(keys, combo, strict=True)
            )
        out.append(Variant(assignments, labels, _shape(assignments)))
    return out


def sweep_key_problem(key: str) -> str | None:
    """Why `key` cannot be swept, or None. Dotted keys reach one level into mapping-valued fields."""
    head, dot, sub = key.partition(".")
    if head not in JOB or head in NOT_SWEPT:
        valid_fields = [k for k in JOB if k != "sweep"]
        return f"cannot sweep unknown field {quote(key)}; {suggest(head[:200], valid_fields)}"
    if not dot:
        return None
    if head not in NESTED_KEYS:
        return f"{quote(head)} is not a mapping, so {quote(key)} cannot address a field inside it"
    valid = NESTED_KEYS[head]
    if valid is not None and sub not in valid:
        return f"unknown key {quote(sub)} in {quote(head)}; {suggest(sub[:200], valid)}"
    return None


def sweep_variants(
    sweep: object, max_jobs: int = MAX_EXPANDED_JOBS
) -> tuple[list[Variant], list[tuple[str, str]]]:
    """All variants of one `sweep:` block (grid x zip), or problems as (field, message)."""
    if sweep is None:
        return [Variant((), ())], []
    if not isinstance(sweep, dict):
        return [], [("sweep", f"must be a mapping with keys grid and/or zip, got {type_name(sweep)}")]
    problems = [(f"sweep.{k}", m) for k, m in unknown_keys(sweep, SWEEP)]
    blocks: dict[str, dict[str, list[Any]]] = {}
    for kind in SWEEP:
        block = sweep.get(kind) or {}
        if not isinstance(block, dict):
            problems.append((f"sweep.{kind}", f"must be a mapping of field -> list, got {type_name(block)}"))
            continue
        for key, values in block.items():
            where = f"sweep.{kind}.{key}"
            why = sweep_key_problem(str(key))
            if why:
                problems.append((where, why))
            elif not isinstance(values, list) or not values:
                problems.append((where, f"must be a non-empty list of values, got {quote(values)}"))
            elif key == "name" and not all(valid_name(v) for v in values):
                problems.append(
                    (
                        where,
                        "swept names must be valid job names (no '/', control or bidi characters): "
                        f"{quote(values)}",
                    )
                )
        blocks[kind] = block
    grid, zipped = blocks.get("grid", {}), blocks.get("zip", {})
    for key in set(grid) & set(zipped):
        problems.append((f"sweep.zip.{key}", f"{quote(key)} is swept in both grid and zip; sweep it once"))
    size = math.prod(len(v) for v in grid.values() if isinstance(v, list))
    if size > max_jobs:
        problems.append(
            (
                "sweep.grid",
                f"expands to {size:,} points, over the limit of {max_jobs:,}; sweep fewer values or raise "
                "limits.max_jobs",
            )
        )
    lengths = {k: len(v) for k, v in zipped.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        problems.append(("sweep.zip", f"zip lists must have equal length, got {detail}"))
    if problems:
        return [], problems
    grid_v = _block_variants(grid, zipped=False) if grid else [Variant((), ())]
    zip_v = _block_variants(zipped, zipped=True) if zipped else [Variant((), ())]
    return [
        Variant(g.assignments + z.assignments, g.labels + z.labels, g.shape + z.shape)
        for g in grid_v
        for z in zip_v
    ], []


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


def expand_manifest(doc: Mapping[str, Any], max_jobs: int = MAX_EXPANDED_JOBS) -> Expansion:
    """Defaults, then the job, then the manifest sweep, then the job sweep; names stay unique."""
    problems: list[tuple[int | None, str | None, str, str]] = []
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append((None, None, "defaults", f"must be a mapping, got {type_name(defaults)}"))
        defaults = {}
    allowed_defaults = [k for k in JOB if k not in NOT_IN_DEFAULTS]
    for key, unknown in unknown_keys(defaults, allowed_defaults):
        message = (
            f"{quote(key)} cannot be a default (names are per job; a manifest-wide sweep is at top level)"
            if key in NOT_IN_DEFAULTS
            else unknown
        )
        problems.append((None, None, f"defaults.{key}", message))
    top_variants, sweep_problems = sweep_variants(doc.get("sweep"), max_jobs)
    problems += [(None, None, f, m) for f, m in sweep_problems]
    raw_jobs = doc.get("jobs")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        problems.append((None, None, "jobs", f"must be a non-empty list of jobs, got {quote(raw_jobs)}"))
        raw_jobs = []
    top_keys = {k for v in top_variants[:1] for k, _ in v.assignments}
    jobs: list[ExpandedJob] = []
    numbers: dict[tuple[Any, ...], int] = {}

    def shapes(shape: tuple[Any, ...]) -> int:
        return numbers.setdefault(shape, len(numbers))

    for index, raw in enumerate(raw_jobs):
        if not isinstance(raw, dict):
            problems.append((index, None, "<job>", f"must be a mapping of job fields, got {type_name(raw)}"))
            continue
        name = raw.get("name", f"job{index}")
        if not valid_name(name):
            why = (
                f"must be a non-empty string of at most {MAX_NAME_CHARS} characters without '/', '\\', "
                "control or bidi characters"
            )
            problems.append((index, None, "name", f"{why}, got {quote(name)}"))
            name = f"job{index}"
        problems += [(index, name, k, m) for k, m in unknown_keys(raw, list(JOB))]
        job_variants, job_problems = sweep_variants(raw.get("sweep"), max_jobs)
        problems += [(index, name, f, m) for f, m in job_problems]
        for key in sorted(top_keys & {k for v in job_variants[:1] for k, _ in v.assignments}):
            problems.append((index, name, f"sweep.{key}", "also swept at manifest level; sweep it once"))
        if len(jobs) + len(top_variants) * len(job_variants) > max_jobs:
            message = (
                f"the manifest expands to more than {max_jobs:,} jobs; split it into several "
                "(or raise limits.max_jobs)"
            )
            problems.append((index, name, "sweep", message))
            break
        base = _merge(defaults, {k: v for k, v in raw.items() if k != "sweep"})
        base["name"] = name
        # Shapes are numbered once per variant, so the loader's per-job lookup hashes three ints.
        own_parts = [(own, NAME_SEPARATOR.join(own.labels), shapes(own.shape)) for own in job_variants]
        for top in top_variants:
            top_base = _apply(base, top.assignments)  # once per manifest-level point, not per job
            prefix, top_shape = NAME_SEPARATOR.join((name, *top.labels)), shapes(top.shape)
            for own, suffix, own_shape in own_parts:
                fields = _apply(top_base, own.assignments) if own.assignments else dict(top_base)
                fields["name"] = job_name = f"{prefix}{NAME_SEPARATOR}{suffix}" if suffix else prefix
                jobs.append(ExpandedJob(index, job_name, fields, (index, top_shape, own_shape)))
    return Expansion(tuple(jobs), tuple(problems))
