"""The local engine end to end: files, ledger, job table, dataset, resume, failures, Ctrl-C.

On the tiny real model (in process): a run's files read back (frame counts, durations, sound), a failure of
the model path recorded while the run goes on, a resume that verifies what it skips, and a render interrupted
mid-denoise, cancelled and resumed. On the fake model: the orchestration around them (skip, re-render what is
missing, leftovers, force, failures by tag), and Ctrl-C through a real process (exit code 130, rerun resumes).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch import cli
from ltx2_batch.cli import run
from ltx2_batch.media.probe import probe
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

# one-stage 32x32 is the cheapest legal shape; job a keeps the default recipe (two-stage distilled, 64x64)
CHEAPEST = """
defaults: {width: 32, height: 32, num_frames: 9, pipeline: distilled, upscale: {spatial: false}}
jobs:
"""
TINY = (
    CHEAPEST
    + """  - {name: a, prompt: "A cat walks on a sunny street, soft piano music.", seed: 1,
     width: 64, height: 64, upscale: {spatial: true}}
  - {name: still, prompt: "A red apple on a table.", num_frames: 1, seed: 3}
  - name: bad-image
    prompt: "broken conditioning image"
    images: [{path: broken.png, frame_idx: 0, strength: 1.0}]
"""
)
FAKE = """
defaults: {width: 32, height: 32, num_frames: 9, frame_rate: 24, upscale: {spatial: false}}
jobs:
  - {name: a, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: b, prompt: "A drone shot of mountains at sunset.", seed: 2, num_frames: 17}
  - {name: still, prompt: "A red apple on a table.", num_frames: 1, seed: 3}
"""


def _job_rows(output_dir: Path) -> pd.DataFrame:
    table = pq.read_table(output_dir / "ledger.parquet").to_pandas()
    return table[table.row_kind == "job"]


def _final(output_dir: Path) -> pd.DataFrame:
    return (
        _job_rows(output_dir).sort_values(["run_id", "seq"]).groupby("job_name").tail(1).set_index("job_name")
    )


def _broken_png(folder: Path) -> None:
    """A PNG whose header and chunk checksums are sound (validation reads only those) but whose pixel data is
    not a deflate stream: it passes validation and fails when the model path decodes it."""
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", b"this is not deflate data"), (b"IEND", b"")]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + b"".join(
            struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks
        )
    )


@pytest.mark.slow
@pytest.mark.usefixtures("warm_run_backends")
def test_tiny_run_writes_checked_files_records_a_failure_and_resumes(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    _broken_png(tmp_path / "m")
    manifest = write_manifest(tmp_path / "m", TINY)
    app = app_factory(f"manifest={manifest}", "export.dataset=true")
    assert run(app, REPO_ROOT) == 1  # a job failed; the others were rendered
    out = tmp_path / "outputs" / "m"
    final = _final(out)
    assert final.loc["bad-image", "status"] == "failed" and final.loc["bad-image", "error"]
    done = final[final.status == "done"]
    assert sorted(done.index) == ["a", "still"]
    assert set(done.memory_policy) == {"resident"} and set(done.device) == {"cpu"}
    for name, row in done.iterrows():
        assert Path(row.output_path).is_file() and Path(row.thumbnail_path).is_file()
        sidecar = json.loads(Path(row.sidecar_path).read_text())
        assert sidecar["job_id"] == row.job_id and sidecar["frames_written"] == row.num_frames
        if name == "still":
            assert row.output_path.endswith(".png")
            continue
        info = probe(row.output_path)
        assert info.frame_count == row.num_frames == 9
        assert abs(info.video_duration_s - 9 / 24) < 1e-3
        assert info.has_audio
        assert abs(info.audio_duration_s - info.video_duration_s) <= 1024 / info.audio_sample_rate
    assert not list((out / "generated").glob(".*.partial"))
    # the ledger is one Parquet file that DuckDB reads directly; the job table has one row per job
    count = duckdb.sql(f"SELECT count(*) FROM '{out / 'ledger.parquet'}' WHERE status = 'done'").fetchall()
    assert count == [(2,)]
    table = duckdb.sql(f"SELECT job_name, status FROM '{out / 'jobs.parquet'}' ORDER BY job_name").fetchall()
    assert table == [("a", "done"), ("bad-image", "failed"), ("still", "done")]
    exported = pq.read_table(out / "dataset" / "metadata.parquet").to_pylist()
    assert sorted((r["job_name"], r["frames"]) for r in exported) == [("a", 9), ("still", 1)]

    # rerun: what verifies is skipped untouched; a damaged file is rendered again; the failure is retried
    video = Path(done.loc["a", "output_path"])
    mtime = video.stat().st_mtime_ns
    still = Path(done.loc["still", "output_path"])
    still.write_bytes(still.read_bytes()[:-100])
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 1
    assert video.stat().st_mtime_ns == mtime
    rows = _job_rows(out)
    assert (rows[rows.job_name == "still"].status == "done").sum() == 2
    assert rows[(rows.job_name == "still") & (rows.status == "retried")].error.str.contains("truncated").all()
    assert (rows[rows.job_name == "bad-image"].status == "failed").sum() == 2


@pytest.mark.slow
def test_a_tiny_render_interrupted_mid_denoise_is_cancelled_then_resumed(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C lands inside the official denoising loop (sent from its first step event, on the main thread,
    where a local render runs): the job is cancelled, nothing partial is left, the rerun renders it. Its
    backends are its own (not warm_run_backends): a backend interrupted mid-render is not reused."""
    from ltx2_batch.run.progress import Progress

    stepped = Progress.job_stepped
    sent: list[str] = []

    def interrupt_once(self: Progress, name: str, step: object) -> None:
        if not sent:
            sent.append(name)
            os.kill(os.getpid(), signal.SIGINT)  # handled by the run's own handler (catching_signals)
        stepped(self, name, step)  # type: ignore[arg-type]

    monkeypatch.setattr(Progress, "job_stepped", interrupt_once)
    manifest = write_manifest(tmp_path / "m", CHEAPEST + "  - {name: c, prompt: a pear}\n")
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 130
    assert sent == ["c"]
    out = tmp_path / "outputs" / "m"
    assert list(_job_rows(out).status) == ["running", "cancelled"]
    assert not (out / "generated").exists() or not list((out / "generated").iterdir())
    monkeypatch.setattr(Progress, "job_stepped", stepped)
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    assert _final(out).loc["c", "status"] == "done"
    assert probe(_final(out).loc["c", "output_path"]).frame_count == 9


def test_a_fake_run_skips_what_is_done_re_renders_what_is_missing_and_forces(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    background: list[str] = []
    monkeypatch.setattr(cli, "import_adapter_in_background", lambda: background.append("torch"))
    manifest = write_manifest(tmp_path / "m", FAKE)
    app = app_factory(f"manifest={manifest}", "model=fake")
    assert run(app, REPO_ROOT) == 0
    assert background == []  # model=fake loads no torch, not even in the background
    out = tmp_path / "outputs" / "m"
    done = _final(out)
    assert sorted(done.index) == ["a", "b", "still"] and set(done.status) == {"done"}
    assert probe(done.loc["b", "output_path"]).frame_count == 17

    # rerun: nothing to do, all skipped, files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "generated").iterdir()}
    assert run(app, REPO_ROOT) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "generated").iterdir()} == mtimes
    assert _job_rows(out).status.value_counts().to_dict() == {"running": 3, "done": 3}  # no rows: no work

    # a deleted output is rendered again, and a killed writer's temporary is removed
    victim = Path(done.loc["a", "output_path"])
    victim.unlink()
    leftover = victim.with_name(f".{victim.name}.deadbeef.partial")  # as a SIGKILLed writer leaves it
    leftover.write_bytes(b"half a file")
    assert run(app, REPO_ROOT) == 0
    assert victim.is_file() and not leftover.exists()
    rows = _job_rows(out)
    assert (rows[(rows.job_name == "a")].status == "done").sum() == 2

    # force: every job rendered again although all are done
    assert run(app_factory(f"manifest={manifest}", "model=fake", "force=true"), REPO_ROOT) == 0
    rows = _job_rows(out)
    assert rows[rows.status == "done"].groupby("job_name").size().to_dict() == {"a": 3, "b": 2, "still": 2}


def test_a_failing_job_is_recorded_and_the_run_goes_on(tmp_path: Path, app_factory: AppFactory) -> None:
    manifest = write_manifest(
        tmp_path / "m", FAKE + '  - {name: broken, prompt: "x", seed: 4, tags: {fake_fail: "out of luck"}}\n'
    )
    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 1
    final = _final(tmp_path / "outputs" / "m")
    assert final.loc["broken", "status"] == "failed"
    assert "out of luck" in final.loc["broken", "error"]
    assert not list((tmp_path / "outputs" / "m" / "generated").glob(".*.partial"))
    assert {final.loc[n, "status"] for n in ("a", "b", "still")} == {"done"}


@pytest.mark.slow  # two launches of the command
def test_ctrl_c_cancels_the_process_then_rerun_resumes(tmp_path: Path) -> None:
    """SIGINT to the command: exit 130, the job in flight cancelled, the rest not started; a rerun of the
    same command renders what is missing (b renders for a second and a half: the signal finds it running)."""
    manifest = write_manifest(
        tmp_path / "m", FAKE.replace("num_frames: 17}", 'num_frames: 17, tags: {fake_render_s: "1.5"}}')
    )
    out_root = tmp_path / "outputs"
    cmd = [
        sys.executable,
        "-m",
        "ltx2_batch",
        f"manifest={manifest}",
        f"output.root={out_root}",
        "model=fake",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:  # interrupt as soon as the second job starts rendering
        lines.append(line)
        if "start" in line and " b " in f"{line} ":
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    lines.append(rest)
    assert proc.returncode == 130, "".join(lines)  # 128 + SIGINT
    rows = _job_rows(out_root / "m")
    assert _final(out_root / "m").loc["b", "status"] == "cancelled", "".join(lines)
    assert "still" not in set(rows.job_name)  # not started
    generated = out_root / "m" / "generated"
    assert not generated.exists() or not list(generated.glob(".*.partial"))

    again = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stdout + again.stderr
    rows = _job_rows(out_root / "m")
    final = rows.sort_values(["run_id", "seq"]).groupby("job_name").tail(1)
    assert set(final.status) <= {"done", "skipped"}
    assert (rows.status == "done").groupby(rows.job_name).sum().to_dict() == {"a": 1, "b": 1, "still": 1}
