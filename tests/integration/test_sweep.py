"""Hydra multirun: a real `python -m ltx2_batch -m seed=1,2` (on the fake model) writes one output dir per
point, one sweep ledger that compares the points in a DuckDB query, and its own multirun.yaml (a second
sweep under the same root keeps its own); rerunning a point resumes it. On the tiny model the points run in
process, as the CLI runs each one (the point labels and column types are tests/unit/test_multirun.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from ltx2_batch.cli import run
from ltx2_batch.run.multirun import sweep_point_config
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

DEFAULTS = """
defaults: {width: 32, height: 32, num_frames: 9, pipeline: distilled, upscale: {spatial: false}}
jobs:
  - {name: fox, prompt: "A red fox runs through snow"}
"""
MANIFEST = DEFAULTS + '  - {name: sea, prompt: "Waves break on a rocky shore", seed: 5}\n'


def _multirun(cwd: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "ltx2_batch", "-m", "progress=false", *args]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # two launches of the command
def test_multirun_points_share_one_sweep_ledger_and_each_sweep_its_record(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    manifest = write_manifest(tmp_path / "m", MANIFEST, name="pair.yaml")
    outputs = tmp_path / "outputs"
    _multirun(tmp_path, "seed=1,2", f"manifest={manifest}", f"output.root={outputs}", "model=fake")
    _multirun(tmp_path, "plan=true", "output.root=outputs", "output.run_name=night", "seed=3,4,5")
    records = sorted(p.relative_to(outputs).as_posix() for p in outputs.rglob("multirun.yaml"))
    assert records == ["sweeps/night/.hydra/multirun.yaml", "sweeps/pair/.hydra/multirun.yaml"]
    night = yaml.safe_load((outputs / "sweeps/night/.hydra/multirun.yaml").read_text())
    assert "seed=3,4,5" in night["hydra"]["overrides"]["task"]

    sweep_dir = outputs / "sweeps" / "pair"
    points = ["model=fake,seed=1", "model=fake,seed=2"]  # a point's label keeps what changes the render
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == [".hydra", *points]
    for point in points:
        assert (sweep_dir / point / "ledger.parquet").is_file()
        assert (sweep_dir / point / "contact_sheet.html").is_file()
    ledger = sweep_dir / "sweep_ledger.parquet"
    rows = duckdb.sql(
        f"SELECT sweep_seed, sweep_point, count(*), count(DISTINCT seed), list(job_name ORDER BY job_name) "
        f"FROM '{ledger}' WHERE row_kind = 'job' AND status = 'done' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert rows == [(1, points[0], 2, 2, ["fox", "sea"]), (2, points[1], 2, 2, ["fox", "sea"])]  # ints
    # The CLI seed replaces base_seed: the job without a seed gets a new one per point, the explicit one is
    # kept (docs/behaviour.md, "Seeds"): fox renders two clips, sea one clip in both points
    query = (
        f"SELECT job_name, count(DISTINCT job_id), list(DISTINCT seed) FROM '{ledger}' WHERE row_kind = 'job'"
    )
    by_job = {name: (ids, seeds) for name, ids, seeds in duckdb.sql(query + " GROUP BY 1").fetchall()}
    assert by_job["fox"][0] == 2 and by_job["sea"] == (1, [5])

    # Running point seed=2 again (in process, as the CLI would) renders nothing and regathers the ledger
    ledger.unlink()
    overrides = ["seed=2", f"manifest={manifest}", f"output.root={outputs}", "model=fake"]
    base = app_factory(f"manifest={manifest}", "seed=2", "progress=false", "model=fake")
    app, point = sweep_point_config(base, overrides, 1, REPO_ROOT, "pair")
    assert point.output_dir == sweep_dir / points[1]
    assert run(app, REPO_ROOT, sweep=point) == 0
    runs = duckdb.sql(
        f"SELECT sweep_point, status, count(*), count(DISTINCT run_id) FROM '{ledger}' "
        "WHERE row_kind = 'job' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert runs == [
        (points[0], "done", 2, 1),
        (points[0], "running", 2, 1),
        (points[1], "done", 2, 1),
        (points[1], "running", 2, 1),
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("warm_run_backends")
def test_sweep_points_on_the_tiny_model(tmp_path: Path, app_factory: AppFactory) -> None:
    """Each point as the CLI runs it under `-m` (sweep_point_config, then run with the point): two seeds of
    one small job, rendered into their own folders and compared in the sweep ledger."""
    manifest = write_manifest(
        tmp_path / "m", MANIFEST.split("  - {name: sea", maxsplit=1)[0], name="pair.yaml"
    )
    for number, seed in enumerate((1, 2)):
        base = app_factory(f"manifest={manifest}", f"seed={seed}", "progress=false")
        app, point = sweep_point_config(base, [f"seed={seed}"], number, REPO_ROOT, "pair")
        assert run(app, REPO_ROOT, sweep=point) == 0
    ledger = tmp_path / "outputs" / "sweeps" / "pair" / "sweep_ledger.parquet"
    rows = duckdb.sql(
        f"SELECT sweep_seed, model_name, count(DISTINCT job_id) FROM '{ledger}' "
        "WHERE row_kind = 'job' AND status = 'done' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert rows == [(1, "tiny", 1), (2, "tiny", 1)]
    clips = sorted((tmp_path / "outputs" / "sweeps" / "pair").glob("seed=*/generated/*.mp4"))
    assert len(clips) == 2 and clips[0].name != clips[1].name
