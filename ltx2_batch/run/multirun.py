"""Hydra multirun sweeps: one output dir per sweep point, one sweep-level ledger across them.

`ltx2-batch -m seed=1,2,3 model=tiny manifest=demo` runs each point as an ordinary run into

    <output.root>/sweeps/<run name>/<point label>/          e.g. outputs/sweeps/demo/seed=2/
    <output.root>/sweeps/<run name>/<point label>/sweep_point.json   the point's overrides
    <output.root>/sweeps/<run name>/sweep_ledger.parquet    every point's ledger rows in one table

The label is built from the point's overrides (not the clock, not Hydra's job number), so rerunning a
sweep resumes each point, and adding `seed=4` later adds one folder. The sweep ledger is the points'
ledgers (`read_rows_many`) plus `output_dir`, `sweep_point` and one `sweep_<key>` column per override
(dots become underscores: `sweep_seed`, `sweep_model`), so points compare in one query. It is regathered
after every point (cheap, idempotent, atomic), so it is complete when the last point ends, whichever
launcher ran them; `python -m ltx2_batch.run.multirun <sweep dir>` regathers by hand.

Engine: a point is one `run(cfg)`. With Hydra's basic launcher the points run one after another in one
process; with `engine=ray` each point starts its own private Ray and shuts it down when it ends (2-3 s),
or, with `engine.address=...`, joins the same long-lived cluster, which is then shared by every point.
Warm actors (and the model they hold) live for one point: points may differ in model or engine.

Must not render or decide what to render; Hydra is read only by the CLI, which passes plain values here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltx2_batch.errors import ConfigError
from ltx2_batch.ledger.store import read_rows_many
from ltx2_batch.storage.layout import run_name_problem
from ltx2_batch.storage.location import is_url

if TYPE_CHECKING:
    from ltx2_batch.config import AppConfig

POINT_FILE = "sweep_point.json"
SWEEP_LEDGER = "sweep_ledger.parquet"
SWEEPS_DIR = "sweeps"
# Overrides that say where or how to run, not what to render: left out of a point's label (still recorded).
_NOT_IN_LABEL = (
    "manifest",
    "output.root",
    "output.run_name",
    "engine",
    "progress",
    "verbose",
    "plan",
    "force",
    "shard",
    "paths",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")
_MAX_LABEL = 120


@dataclass(frozen=True)
class SweepPoint:
    """One point of a Hydra multirun: its folder under the sweep dir and the overrides that make it."""

    sweep_dir: Path
    label: str  # this point's folder name under sweep_dir
    overrides: tuple[tuple[str, str], ...]  # every command-line override of this point, in order

    @property
    def output_dir(self) -> Path:
        """The point's own output dir, an ordinary run dir."""
        return self.sweep_dir / self.label


def parse_overrides(overrides: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`["seed=1", "+x.y=2"]` -> `(("seed", "1"), ("x.y", "2"))`; Hydra's add/delete prefixes dropped."""
    out = []
    for text in overrides:
        key, _, value = text.partition("=")
        out.append((key.lstrip("+~"), value))
    return tuple(out)


def _in_label(key: str) -> bool:
    return not any(key == p or key.startswith(f"{p}.") for p in _NOT_IN_LABEL)


def point_label(overrides: tuple[tuple[str, str], ...], number: int = 0) -> str:
    """`model=tiny,seed=2` from the overrides that change what is rendered; path-safe and bounded."""
    kept = sorted((k, v) for k, v in overrides if _in_label(k))
    label = _UNSAFE.sub("_", ",".join(f"{k}={v}" for k, v in kept)) or f"point{number}"
    if len(label) > _MAX_LABEL:
        label = f"{label[: _MAX_LABEL - 17]}-{hashlib.sha256(label.encode()).hexdigest()[:16]}"
    return label


def sweep_point_config(
    app: AppConfig, overrides: Sequence[str], number: int, project_root: Path, manifest_stem: str
) -> tuple[AppConfig, SweepPoint]:
    """This point's config (outputs under the sweep dir) and its SweepPoint. Pure: writes nothing."""
    parsed = parse_overrides(overrides)
    if is_url(app.output.root):
        raise ConfigError(
            f"sweeps (-m) keep their sweep ledger on a disk; output.root={app.output.root} is a bucket: give "
            "a local output.root, or launch each point on its own with output.run_name=<name>"
        )
    root = Path(app.output.root)
    root = root if root.is_absolute() else project_root / root
    name = app.output.run_name or manifest_stem
    problem = run_name_problem(name)
    if problem:
        raise ConfigError(f"sweep run name {problem}; set output.run_name=<one folder name>")
    sweep_dir = root / SWEEPS_DIR / name
    point = SweepPoint(sweep_dir, point_label(parsed, number), parsed)
    output = dataclasses.replace(app.output, root=str(sweep_dir), run_name=point.label)
    return dataclasses.replace(app, output=output), point


def write_point(point: SweepPoint) -> Path:
    """Record the point's overrides in its output dir: what `gather_sweep` finds it by."""
    point.output_dir.mkdir(parents=True, exist_ok=True)
    target = point.output_dir / POINT_FILE
    tmp = target.with_name(f".{POINT_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"label": point.label, "overrides": dict(point.overrides)}, indent=2) + "\n")
    tmp.replace(target)
    return target


def column_name(key: str) -> str:
    """The sweep ledger's column for override `key`: `sweep_` plus the key, non-word characters as `_`."""
    return "sweep_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def _scalar(text: str) -> object:
    """An override's value as Hydra reads it: `1` an int, `0.5` a float, `true` a bool, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def typed_column(texts: list[str | None]) -> pa.Array:
    """One sweep column, typed by its values: ints stay ints (`sweep_seed = 1`), numbers mixed with ints
    become floats, booleans bools; anything else, or a mix, stays text. A point without the key is null."""
    values = [None if t is None else _scalar(t) for t in texts]
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds == {int}:
        return pa.array(values, pa.int64())
    if kinds and kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())  # type: ignore[arg-type]  # kinds says: int or float
    return pa.array(texts, pa.string())


def gather_sweep(sweep_dir: Path) -> Path:
    """Every point's ledger in `<sweep_dir>/sweep_ledger.parquet`, with the points' overrides as columns."""
    sweep_dir = Path(sweep_dir)
    points = {}
    for path in sorted(sweep_dir.glob(f"*/{POINT_FILE}")):
        points[str(path.parent)] = json.loads(path.read_text())
    dirs = list(points)
    table = read_rows_many([Path(d) for d in dirs])
    where = pc.index_in(table["output_dir"], value_set=pa.array(dirs, pa.string()))
    table = table.append_column("sweep_point", pc.take(pa.array([points[d]["label"] for d in dirs]), where))
    keys = sorted({k for p in points.values() for k in p["overrides"]})
    for key in keys:
        values = typed_column([points[d]["overrides"].get(key) for d in dirs])
        table = table.append_column(column_name(key), pc.take(values, where))
    target = sweep_dir / SWEEP_LEDGER
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{SWEEP_LEDGER}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    tmp.replace(target)
    return target


if __name__ == "__main__":
    print(gather_sweep(Path(sys.argv[1])))
