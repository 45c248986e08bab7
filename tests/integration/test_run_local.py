"""End to end on the tiny model through the local engine: files, ledger, resume, failures, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.media.probe import probe
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

pytestmark = pytest.mark.slow

SMALL = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - name: a
    prompt: "A cat walks on a sunny street, soft piano music."
    seed: 1
  - name: b
    prompt: "A drone shot of mountains at sunset with wind noise."
    seed: 2
    num_frames: 17
  - name: still
    prompt: "A red apple on a table."
    width: 128  # 64x64 x 1 frame is a 1x1x1 stage-1 latent: the upsampler's GroupNorm rejects it
    num_frames: 1
    seed: 3
"""


def _job_rows(output_dir: Path) -> pd.DataFrame:
    table = pq.read_table(output_dir / "ledger.parquet").to_pandas()
    return table[table.row_kind == "job"]


def test_demo_like_run_writes_files_ledger_and_resumes(tmp_path: Path, app_factory: AppFactory) -> None:
    manifest = write_manifest(tmp_path / "m", SMALL)
    app = app_factory(f"manifest={manifest}")
    assert run(app, REPO_ROOT) == 0
    out = tmp_path / "outputs" / "m"
    rows = _job_rows(out)
    done = rows[rows.status == "done"]
    assert sorted(done.job_name) == ["a", "b", "still"]
    assert set(done.memory_policy) == {"resident"} and set(done.device) == {"cpu"}
    for _, row in done.iterrows():
        assert Path(row.output_path).is_file() and Path(row.thumbnail_path).is_file()
        sidecar = json.loads(Path(row.sidecar_path).read_text())
        assert sidecar["job_id"] == row.job_id and sidecar["frames_written"] == row.num_frames
        if row.job_name == "still":
            assert row.output_path.endswith(".png")
            continue
        info = probe(row.output_path)
        assert info.frame_count == row.num_frames
        assert abs(info.video_duration_s - row.num_frames / 24) < 1e-3
        assert info.has_audio
        assert abs(info.audio_duration_s - info.video_duration_s) <= 1024 / info.audio_sample_rate
    # the ledger is one Parquet file that DuckDB reads directly
    count = duckdb.sql(f"SELECT count(*) FROM '{out / 'ledger.parquet'}' WHERE status = 'done'").fetchall()
    assert count == [(3,)]

    # rerun: nothing to do, all skipped, files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "generated").iterdir()}
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "generated").iterdir()} == mtimes

    # a deleted output is rendered again; force re-renders everything
    victim = Path(done[done.job_name == "a"].output_path.iloc[0])
    victim.unlink()
    leftover = victim.with_name(f".{victim.name}.deadbeef.partial")  # as a SIGKILLed writer leaves it
    leftover.write_bytes(b"half a file")
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    assert victim.is_file()
    assert not leftover.exists()
    rows = _job_rows(out)
    assert (rows[(rows.job_name == "a")].status == "done").sum() == 2

    # force: every job rendered again although all are done
    assert run(app_factory(f"manifest={manifest}", "force=true"), REPO_ROOT) == 0
    rows = _job_rows(out)
    assert rows[rows.status == "done"].groupby("job_name").size().to_dict() == {"a": 3, "b": 2, "still": 2}


def test_a_failing_job_is_recorded_and_the_run_goes_on(tmp_path: Path, app_factory: AppFactory) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    # A PNG whose header and chunk checksums are sound (validation reads only those) but whose pixel data
    # is not a deflate stream: it passes validation and fails when the executor decodes it.
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", b"this is not deflate data"), (b"IEND", b"")]
    (folder / "broken.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + b"".join(
            struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks
        )
    )
    manifest = write_manifest(
        folder,
        SMALL
        + """
  - name: bad-image
    prompt: "broken conditioning image"
    images: [{path: broken.png, frame_idx: 0, strength: 1.0}]
""",
    )
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 1
    rows = _job_rows(tmp_path / "outputs" / "m")
    final = rows.sort_values("seq").groupby("job_name").tail(1).set_index("job_name")
    assert final.loc["bad-image", "status"] == "failed"
    assert final.loc["bad-image", "error"]
    assert not list((tmp_path / "outputs" / "m" / "generated").glob(".*.partial"))
    assert {final.loc[n, "status"] for n in ("a", "b", "still")} == {"done"}


def test_ctrl_c_cancels_then_rerun_resumes(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", SMALL.replace("num_frames: 17", "num_frames: 121"))
    out_root = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={out_root}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:  # interrupt as soon as the second job starts rendering
        lines.append(line)
        if "start" in line and " b " in f"{line} ":
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    lines.append(rest)
    assert proc.returncode == 130, "".join(lines)  # 128 + SIGINT
    rows = _job_rows(out_root / "m")
    assert "cancelled" in set(rows.status), "".join(lines)
    generated = out_root / "m" / "generated"
    assert not generated.exists() or not list(generated.glob(".*.partial"))

    again = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert again.returncode == 0, again.stdout + again.stderr
    rows = _job_rows(out_root / "m")
    final = rows.sort_values(["run_id", "seq"]).groupby("job_name").tail(1)
    assert set(final.status) <= {"done", "skipped"}
    assert (rows.status == "done").groupby(rows.job_name).sum().to_dict() == {"a": 1, "b": 1, "still": 1}
