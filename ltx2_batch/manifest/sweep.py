"""One `sweep:` block read into axes and walked lazily: the cartesian product that is never built whole.

Owns `Axis` (one swept key: its values, where they are in the file, their name labels), `Sweep` (grid
axes and zip axes; its size by arithmetic; its points, its variants and its distinct templates walked
lazily) and `read_sweep` (a block's structure checked: which keys may be swept, non-empty lists, equal
zip lengths). A sweep's size is the product of its axes' lengths, computed before one point exists.
Must not judge values (the validator does, one axis value or one template at a time) nor read files.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from ltx2_batch.manifest.names import label, valid_name
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.suggest import suggest, unknown_keys
from ltx2_batch.manifest.values import type_name
from ltx2_batch.manifest.vocabulary import JOB, NESTED_KEYS, NOT_SWEPT, SWEEP, VARYING_FIELDS

Point = tuple[int, ...]  # one value index per grid axis, then the zip row


@dataclass(frozen=True)
class Axis:
    """One swept key: its values as written, where they are (`sweep.grid.seed`) and each value's name
    label (`seed=3`; a swept `name` labels with the name itself)."""

    key: str
    values: Sequence[Any]
    where: str
    labels: Sequence[str]

    @property
    def varying(self) -> bool:
        """A key that does not change the template (name, prompt, seed): the validator checks its values
        alone and walks only the other axes' combinations."""
        return self.key in VARYING_FIELDS


def _axes(block: Mapping[str, Sequence[Any]], where: str, zipped: bool) -> tuple[Axis, ...]:
    """A block's axes. Labels use the last part of a dotted key (`cfg_scale=4`) unless two keys of the
    block share it."""
    keys = list(block)
    leaves = [k.rpartition(".")[2] for k in keys]
    short = dict(zip(keys, leaves if len(set(leaves)) == len(leaves) else keys, strict=True))
    out = []
    for key in keys:
        values = block[key]
        if key == "name":
            labels: Sequence[str] = [str(v) for v in values]
        elif zipped and "name" in block:
            labels = [""] * len(values)  # a zip's swept name replaces the labels of its row
        else:
            labels = [label(short[key], v, i) for i, v in enumerate(values)]
        out.append(Axis(key, values, f"{where}.{key}", labels))
    return tuple(out)


@dataclass(frozen=True)
class Sweep:
    """One `sweep:` block, read: its grid axes (a cartesian product) and zip axes (advanced together).
    A point is one value index per grid axis, then the zip row (0 when there is no zip)."""

    grid: tuple[Axis, ...] = ()
    zipped: tuple[Axis, ...] = ()

    @property
    def axes(self) -> tuple[Axis, ...]:
        """Every axis: the grid's, then the zip's."""
        return self.grid + self.zipped

    @property
    def rows(self) -> int:
        """How many rows the zip advances through together (1 without a zip)."""
        return len(self.zipped[0].values) if self.zipped else 1

    @property
    def grid_size(self) -> int:
        """Points of the grid alone: the product of its axes' lengths."""
        return math.prod(len(axis.values) for axis in self.grid)

    @property
    def size(self) -> int:
        """How many points: arithmetic on the axes, nothing built."""
        return self.grid_size * self.rows

    def points(self) -> Iterator[Point]:
        """Every point in expansion order: the first grid axis outermost, the zip row innermost."""
        return itertools.product(*(range(len(axis.values)) for axis in self.grid), range(self.rows))

    def assignments(self, point: Point) -> tuple[tuple[str, Any], ...]:
        """The (key, value) pairs that `point` sets."""
        row = point[-1]
        grid = tuple((axis.key, axis.values[i]) for axis, i in zip(self.grid, point, strict=False))
        return grid + tuple((axis.key, axis.values[row]) for axis in self.zipped)

    def labels(self, point: Point) -> tuple[str, ...]:
        """The name labels of `point`; a swept `name` in the zip replaces the zip axes' labels."""
        row = point[-1]
        grid = tuple(axis.labels[i] for axis, i in zip(self.grid, point, strict=False))
        named = [axis for axis in self.zipped if axis.key == "name"]
        if named:
            return (*grid, named[0].labels[row])
        return grid + tuple(axis.labels[row] for axis in self.zipped)

    def shape(self, point: Point) -> tuple[int | None, ...]:
        """The part of `point` that can change a job's template: the value index of each axis that is not
        name, prompt or seed (None for those), and the zip row when the zip holds such an axis."""
        grid = tuple(None if axis.varying else i for axis, i in zip(self.grid, point, strict=False))
        return (*grid, point[-1] if self._zip_shapes else None)

    @property
    def _zip_shapes(self) -> bool:
        return any(not axis.varying for axis in self.zipped)

    def variants(
        self,
    ) -> Iterator[tuple[tuple[tuple[str, Any], ...], tuple[str, ...], tuple[int | None, ...]]]:
        """(assignments, labels, shape) of every point, in `points` order: three C-level products zipped,
        no per-point lookups (a valid 2,000,000-job sweep walks this)."""
        rows = range(self.rows)
        zip_assign = [tuple((a.key, a.values[r]) for a in self.zipped) for r in rows]
        named = [a for a in self.zipped if a.key == "name"]
        zip_labels = [
            (named[0].labels[r],) if named else tuple(a.labels[r] for a in self.zipped) for r in rows
        ]
        zip_shape: Sequence[int | None] = rows if self._zip_shapes else [None] * self.rows
        assigns = itertools.product(*([(a.key, v) for v in a.values] for a in self.grid), zip_assign)
        labels = itertools.product(*(a.labels for a in self.grid), zip_labels)
        shapes = itertools.product(
            *((None,) * len(a.values) if a.varying else range(len(a.values)) for a in self.grid), zip_shape
        )
        for assign, named_by, shape in zip(assigns, labels, shapes, strict=True):
            # the last factor is the zip row's tuple: spliced onto the grid's items
            yield (
                cast("tuple[tuple[str, Any], ...]", assign[:-1] + assign[-1]),
                cast("tuple[str, ...]", named_by[:-1] + tuple(named_by[-1])),
                shape,
            )

    def shape_points(self, bad: Mapping[str, Collection[int]]) -> Iterator[tuple[Point, int]]:
        """One point per distinct shape whose values are not `bad` (axis `where` -> value indices), with
        the number of points sharing that shape: the name, prompt and seed axes stay at their first
        value (not bad when one is), so a sweep of 2,000 seeds x 999 scales is 999 templates."""
        varying_points = 1
        choices: list[Sequence[int]] = []
        for axis in self.grid:
            good = _good(len(axis.values), bad.get(axis.where, ()))
            if axis.varying:
                choices.append(good[:1] or [0])
                varying_points *= len(axis.values)
            else:
                choices.append(good)
        rows = range(self.rows)
        if any(not axis.varying for axis in self.zipped):
            rows_ok = [r for r in rows if not any(r in bad.get(a.where, ()) for a in self.zipped)]
            row_choice: Sequence[int] = rows_ok
        else:
            row_choice = [
                next((r for r in rows if not any(r in bad.get(a.where, ()) for a in self.zipped)), 0)
            ]
            varying_points *= self.rows
        for point in itertools.product(*choices, row_choice):
            yield point, varying_points


def _good(length: int, bad: Collection[int]) -> Sequence[int]:
    return range(length) if not bad else [i for i in range(length) if i not in bad]


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


def read_sweep(sweep: object, where: str = "sweep") -> tuple[Sweep, list[tuple[str, str]]]:
    """One `sweep:` block read into axes, with its problems as (field, message). A key that cannot be
    swept, a value that is not a non-empty list, zip lists of unequal length: reported, and left out of
    the sweep, so the rest of the manifest is still validated as written."""
    if sweep is None:
        return Sweep(), []
    if not isinstance(sweep, dict):
        return Sweep(), [(where, f"must be a mapping with keys grid and/or zip, got {type_name(sweep)}")]
    problems = [(f"{where}.{k}", m) for k, m in unknown_keys(sweep, SWEEP)]
    blocks: dict[str, dict[str, list[Any]]] = {}
    for kind in SWEEP:
        block = sweep.get(kind) or {}
        if not isinstance(block, dict):
            problems.append(
                (f"{where}.{kind}", f"must be a mapping of field -> list, got {type_name(block)}")
            )
            block = {}
        blocks[kind] = {}
        for key, values in block.items():
            problem = _axis_problem(str(key), values)
            if problem:
                problems.append(
                    (f"{where}.{kind}.{quote(key, 100) if not isinstance(key, str) else key}", problem)
                )
            elif kind == "zip" and key in blocks["grid"]:
                message = f"{quote(key)} is swept in both grid and zip; sweep it once"
                problems.append((f"{where}.zip.{key}", message))
            else:
                blocks[kind][key] = values
    zipped = blocks["zip"]
    if len({len(v) for v in zipped.values()}) > 1:
        detail = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        problems.append((f"{where}.zip", f"zip lists must have equal length, got {detail}"))
        zipped = {}
    return Sweep(_axes(blocks["grid"], f"{where}.grid", False), _axes(zipped, f"{where}.zip", True)), problems


def _axis_problem(key: str, values: object) -> str | None:
    why = sweep_key_problem(key)
    if why:
        return why
    if not isinstance(values, list) or not values:
        return f"must be a non-empty list of values, got {quote(values)}"
    if key == "name" and not all(valid_name(v) for v in values):
        return f"swept names must be valid job names (no '/', control or bidi characters): {quote(values)}"
    return None
