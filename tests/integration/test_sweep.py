"""Hydra multirun on the tiny model: a real `python -m ltx2_batch -m seed=1,2` writes one output dir per
point and one sweep ledger that compares the points in a DuckDB query; rerunning a point resumes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ltx2_batch.cli import run
from ltx2_batch.run.multirun import parse_overrides, point_label, sweep_point_config, typed_column
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: fox, prompt: "A red fox runs through snow"}
  - {name: sea, prompt: "Waves break on a rocky shore", seed: 5}
"""


def test_point_labels_keep_what_changes_the_render() -> None:
    overrides = parse_overrides(
        [
            "seed=2",
            "manifest=/a/b.yaml",
            "output.root=/tmp/o",
            "+model=tiny",
            "engine.num_workers=2",
            "chaining.overlap_frames=16",
        ]
    )
    assert overrides[3] == ("model", "tiny")
    assert point_label(overrides) == "chaining.overlap_frames=16,model=tiny,seed=2"
    assert point_label(parse_overrides(["manifest=x", "output.root=/o"]), number=3) == "point3"
    assert point_label(parse_overrides(["prompt_note=a/b c"])) == "prompt_note=a_b_c"
    long = point_label(parse_overrides([f"k{i}=value{i}" for i in range(40)]))
    assert len(long) <= 120 and long != point_label(parse_overrides([f"k{i}=value{i}" for i in range(41)]))


def test_sweep_columns_keep_the_override_types() -> None:
    assert typed_column(["1", "2", None]).type == pa.int64()
    assert typed_column(["1", "2.5"]).to_pylist() == [1.0, 2.5]
    assert typed_column(["true", "False"]).to_pylist() == [True, False]
    assert typed_column(["tiny", "3"]).to_pylist() == ["tiny", "3"]  # a mix stays text


@pytest.mark.slow
def test_multirun_points_share_one_sweep_ledger(tmp_path: Path, app_factory: AppFactory) -> None:
    manifest = write_manifest(tmp_path / "m", MANIFEST, name="pair.yaml")
    outputs = tmp_path / "outputs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ltx2_batch",
            "-m",
            "seed=1,2",
            f"manifest={manifest}",
            f"output.root={outputs}",
            "progress=false",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = outputs / "sweeps" / "pair"
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == [".hydra", "seed=1", "seed=2"]
    assert (sweep_dir / ".hydra" / "multirun.yaml").is_file()  # this sweep's own Hydra record
    for point in ("seed=1", "seed=2"):
        assert (sweep_dir / point / "ledger.parquet").is_file()
        assert (sweep_dir / point / "contact_sheet.html").is_file()
    ledger = sweep_dir / "sweep_ledger.parquet"
    rows = duckdb.sql(
        f"SELECT sweep_seed, sweep_point, count(*), count(DISTINCT seed), list(job_name ORDER BY job_name) "
        f"FROM '{ledger}' WHERE row_kind = 'job' AND status = 'done' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert rows == [(1, "seed=1", 2, 2, ["fox", "sea"]), (2, "seed=2", 2, 2, ["fox", "sea"])]  # ints
    # The CLI seed replaces base_seed: the job without a seed gets a new one per point, the explicit one is
    # kept (docs/behaviour.md, "Seeds"): fox renders two clips, sea one clip in both points
    query = (
        f"SELECT job_name, count(DISTINCT job_id), list(DISTINCT seed) FROM '{ledger}' WHERE row_kind = 'job'"
    )
    by_job = {name: (ids, seeds) for name, ids, seeds in duckdb.sql(query + " GROUP BY 1").fetchall()}
    assert by_job["fox"][0] == 2 and by_job["sea"] == (1, [5])

    # Running point seed=2 again (in process, as the CLI would) renders nothing and regathers the ledger
    ledger.unlink()
    overrides = ["seed=2", f"manifest={manifest}", f"output.root={outputs}"]
    base = app_factory(f"manifest={manifest}", "seed=2", "progress=false")
    app, point = sweep_point_config(base, overrides, 1, REPO_ROOT, "pair")
    assert point.output_dir == sweep_dir / "seed=2"
    assert run(app, REPO_ROOT, sweep=point) == 0
    runs = duckdb.sql(
        f"SELECT sweep_point, status, count(*), count(DISTINCT run_id) FROM '{ledger}' "
        "WHERE row_kind = 'job' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert runs == [
        ("seed=1", "done", 2, 1),
        ("seed=1", "running", 2, 1),
        ("seed=2", "done", 2, 1),
        ("seed=2", "running", 2, 1),
    ]
