"""The live job table on the tiny model: a real run in a subprocess, queried with DuckDB (and pandas,
polars where installed) while it renders, then after it; `ltx2-batch status` prints it."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, write_manifest

pytestmark = pytest.mark.slow

MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled, audio: false}
jobs:
  - {name: first, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: second, prompt: "A drone shot of mountains at sunset.", seed: 2}
  - {name: long, prompt: "Waves roll onto a beach at dusk.", seed: 3, num_frames: 121, pipeline: ti2vid,
     width: 256, height: 256}  # seconds (guided, 2 stages): the other two finish well before it
"""
DONE_LINE = re.compile(r"\] done\s+(\S+) \(")


def _live(table: Path) -> list[tuple[str, str, int]]:
    if not table.exists():
        return []
    return duckdb.sql(f"SELECT job_name, status, attempts FROM '{table}' ORDER BY job_name").fetchall()


def test_the_job_table_is_queryable_during_and_after_a_run(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", MANIFEST)
    out = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={out}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*cmd, "ledger_refresh_s=0.2"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    table = out / "m" / "jobs.parquet"
    seen_live: list[tuple[str, str, int]] = []
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first job reported done by the run itself...
            lines.append(line)
            if (match := DONE_LINE.search(line)) is not None:
                finished = match.group(1)
                break
        else:
            pytest.fail("the run ended before any job was done:\n" + "".join(lines))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ... shows up in the live table while the run goes on
            rows = _live(table)
            if (finished, "done", 1) in rows:
                seen_live = rows
                still_running = proc.poll() is None
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)  # the poll's pause; returns early if the run ended
        rest, _ = proc.communicate(timeout=600)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines)
    assert seen_live, f"{finished} never appeared done in {table}:\n" + "".join(lines)
    assert still_running, "the table was only fresh after the run ended"
    assert len({name for name, _, _ in seen_live}) == len(seen_live)  # one row per job, live too
    assert any(status != "done" for _, status, _ in seen_live), seen_live  # the long one had not finished

    # After the run: one row per job, every state and timing filled
    final = duckdb.sql(
        f"SELECT job_name, status, attempts, queue_s >= 0, render_s > 0, output_path FROM '{table}' "
        "ORDER BY job_name"
    ).fetchall()
    assert [row[:5] for row in final] == [(n, "done", 1, True, True) for n in ("first", "long", "second")]
    assert all(Path(row[5]).is_file() for row in final)
    frame = pd.read_parquet(table)
    assert frame.job_id.is_unique and len(frame) == 3
    history = duckdb.sql(f"SELECT count(*) FROM '{out / 'm' / 'ledger.parquet'}' WHERE row_kind = 'job'")
    assert history.fetchall() == [(6,)]  # the attempts table: running + done per job
    import polars as pl

    assert pl.read_parquet(table).height == 3

    status = subprocess.run(
        [sys.executable, "-m", "ltx2_batch", "status", f"manifest={manifest}", f"output.root={out}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status.returncode == 0, status.stderr[-2000:]
    assert "3 jobs (done 3)" in status.stdout and "generated/" in status.stdout
