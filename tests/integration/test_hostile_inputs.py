"""Hostile input and damaged outputs, end to end: refusals before any model work (exit 2, no traceback,
nothing written), a resumed run that verifies what it skips, adoption of finished files, a damaged ledger.

All orchestration, in process on the fake model (its files are real MP4s with sound, written by the same
writers); a run refused here never reaches a model. A tiny-model resume that re-renders a damaged file is
tests/integration/test_run_local.py; the command's own exit code for a refusal is test_cli_process.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.export.dataset import export_dataset
from tests.conftest import REPO_ROOT, AppFactory, compose_app, write_manifest
from tests.manifests import write_hostile_inputs

CORPUS = REPO_ROOT / "tests" / "unit" / "bad_manifests"
SMALL = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}}
jobs:
  - {name: a, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: b, prompt: "A drone shot of mountains at sunset.", seed: 2}
  - {name: c, prompt: "A red apple on a table.", seed: 3}
"""


def _job_rows(output_dir: Path) -> pd.DataFrame:
    table = pq.read_table(output_dir / "ledger.parquet").to_pandas()
    return table[table.row_kind == "job"].sort_values(["run_id", "seq"])


@pytest.mark.parametrize(
    ("manifest", "override", "expected"),
    [
        ("33_alias_bomb.yaml", "", "limits.max_alias_nodes"),
        ("34_deep_nesting.yaml", "", "nesting deeper than 64 levels"),
        ("35_num_frames_huge.yaml", "", "limits.max_num_frames"),
        ("42_decompression_bomb_png.yaml", "", "declares a frame too large"),
        ("", "output.run_name=../../escape", "must be a plain folder name"),
        ("...yaml", "", "manifest's file stem (...yaml) is '..'"),
    ],
)
def test_a_run_is_refused_before_any_model_work(
    tmp_path: Path, manifest: str, override: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    write_hostile_inputs(folder)
    target = folder / (manifest if manifest.startswith("3") or manifest.startswith("4") else "ok.yaml")
    if manifest.startswith("..."):
        target = folder / manifest
    target.write_bytes((CORPUS / manifest).read_bytes() if (CORPUS / manifest).is_file() else SMALL.encode())
    out = tmp_path / "outputs"
    app = compose_app(f"manifest={target}", f"output.root={out}", *([override] if override else []))
    assert run(app, REPO_ROOT) == 2  # the command's exit code
    done = capsys.readouterr()
    assert done.err.startswith("error:") and expected in done.err
    assert "Traceback" not in done.err + done.out
    assert not out.exists()  # refused before any file (or model) was touched


def test_a_run_reads_the_whole_prompt_file_before_its_first_render(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "caps.txt").write_bytes(b"".join(b"prompt %d\n" % i for i in range(500)) + b"caf\xe9\n")
    manifest = write_manifest(
        folder,
        "jobs:\n  - {name: p, prompts: {path: caps.txt}, width: 32, height: 32, num_frames: 9,"
        " upscale: {spatial: false}}\n",
    )
    assert run(app_factory(f"manifest={manifest}", "batch_jobs=10", "model=fake"), REPO_ROOT) == 2
    assert not (tmp_path / "outputs" / "m").exists()  # not one of the 500 good rows was rendered


def test_resume_verifies_before_it_skips_and_the_export_leaves_bad_files_out(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    manifest = write_manifest(tmp_path / "m", SMALL)
    out = tmp_path / "outputs" / "m"
    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 0
    rows = _job_rows(out)
    done = rows[rows.status == "done"].set_index("job_name")
    clip_a = Path(done.loc["a", "output_path"])
    clip_a.write_bytes(clip_a.read_bytes()[:-100])  # truncated
    Path(done.loc["b", "sidecar_path"]).write_text("{ not json")
    untouched = Path(done.loc["c", "output_path"]).stat().st_mtime_ns

    report = export_dataset(out)
    assert report.samples == 1 and {job_id for job_id, _ in report.rejected} == set(
        done.loc[["a", "b"], "job_id"]
    )
    clips = [p.name for p in (out / "dataset" / "video").iterdir() if p.suffix == ".mp4"]
    assert clips == [f"{done.loc['c', 'job_id']}.mp4"]

    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 0
    rows = _job_rows(out)
    second = rows[rows.run_id == rows.run_id.max()].set_index("job_name")
    retried = rows[rows.status == "retried"].set_index("job_name")
    assert sorted(retried.index) == ["a", "b"]
    assert "is truncated" in retried.loc["a", "error"] and "cannot read sidecar" in retried.loc["b", "error"]
    assert (rows[rows.status == "done"].groupby("job_name").size().to_dict()) == {"a": 2, "b": 2, "c": 1}
    assert second.loc["c", "status"] == "skipped"
    assert Path(done.loc["c", "output_path"]).stat().st_mtime_ns == untouched
    assert json.loads(Path(done.loc["b", "sidecar_path"]).read_text())["job_id"] == done.loc["b", "job_id"]
    assert export_dataset(out).samples == 3

    # Files a worker finished after its driver died (no done row): adopted as done, not rendered again
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "generated").iterdir()}
    shutil.rmtree(out / "ledger")
    (out / "ledger.parquet").unlink()
    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "generated").iterdir()} == mtimes
    rows = _job_rows(out)
    assert (rows.status == "done").sum() == 3 and rows.error.str.contains("adopted from its sidecar").all()
    assert (
        run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 0
    )  # adopted rows verify: nothing to do
    assert len(_job_rows(out)) == len(rows)  # (a run with nothing pending writes no rows)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "generated").iterdir()} == mtimes


def test_a_damaged_ledger_stops_with_the_fix_and_ledger_rebuild_resumes(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    manifest = write_manifest(tmp_path / "m", SMALL)
    out = tmp_path / "outputs" / "m"
    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "generated").iterdir()}
    (out / "ledger.parquet").write_bytes(b"")  # 0 bytes: a disk that filled up mid-compaction
    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 2
    assert run(app_factory(f"manifest={manifest}", "model=fake", "ledger_rebuild=true"), REPO_ROOT) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "generated").iterdir()} == mtimes  # nothing rendered
    assert len(list(out.glob("ledger.parquet.damaged-*"))) == 1
    rows = _job_rows(out)
    assert list(rows.status) == ["done"] * 3 and rows.error.str.startswith("rebuilt from its sidecar").all()
