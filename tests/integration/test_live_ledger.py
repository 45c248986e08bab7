"""The live job table: queried with DuckDB (and pandas, polars) while a run renders and after it; `status`
prints it. In process, on the fake model: the run in the main thread (its signal handlers need it), a reader
thread polling the table file as another program would, the last job slow by tag so the run is still going
when the first finished job shows up. (The job table of a tiny-model run is checked in test_run_local.py;
the `status` verb of the command is test_cli_process.py.)"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

MANIFEST = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}, audio: false}
jobs:
  - {name: first, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: second, prompt: "A drone shot of mountains at sunset.", seed: 2}
  - {name: long, prompt: "Waves roll onto a beach at dusk.", seed: 3, tags: {fake_render_s: "1.5"}}
"""


class _Reader(threading.Thread):
    """Polls the table until a job shows up done in it; records what it saw and whether the run was on."""

    def __init__(self, table: Path, run_over: threading.Event) -> None:
        super().__init__(name="table-reader", daemon=True)
        self.table, self.run_over = table, run_over
        self.seen: list[tuple[str, str, int]] = []
        self.while_running = False

    def run(self) -> None:
        while not self.run_over.wait(0.05):  # the poll's pause; ends early once the run is over
            if not self.table.exists():
                continue
            try:  # the file is replaced under the reader: DuckDB may catch it mid-replace (FIELD_NOTES)
                rows = duckdb.sql(
                    f"SELECT job_name, status, attempts FROM '{self.table}' ORDER BY job_name"
                ).fetchall()
            except duckdb.Error:
                continue
            if any(status == "done" for _, status, _ in rows):
                self.seen, self.while_running = rows, not self.run_over.is_set()
                return


def test_the_job_table_is_queryable_during_and_after_a_run(
    tmp_path: Path, app_factory: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m", MANIFEST)
    out = tmp_path / "outputs" / "m"
    run_over = threading.Event()
    reader = _Reader(out / "jobs.parquet", run_over)
    reader.start()
    try:
        code = run(app_factory(f"manifest={manifest}", "model=fake", "ledger_refresh_s=0.2"), REPO_ROOT)
    finally:
        run_over.set()
        reader.join(timeout=30)
    assert code == 0
    assert reader.seen, "no job ever showed up done in the live table"
    assert reader.while_running, "the table was only fresh after the run ended"
    assert len({name for name, _, _ in reader.seen}) == len(reader.seen)  # one row per job, live too
    assert ("first", "done", 1) in reader.seen
    assert any(status != "done" for _, status, _ in reader.seen), reader.seen  # the long one had not finished

    # After the run: one row per job, every state and timing filled
    table = out / "jobs.parquet"
    final = duckdb.sql(
        f"SELECT job_name, status, attempts, queue_s >= 0, render_s > 0, output_path FROM '{table}' "
        "ORDER BY job_name"
    ).fetchall()
    assert [row[:5] for row in final] == [(n, "done", 1, True, True) for n in ("first", "long", "second")]
    assert all(Path(row[5]).is_file() for row in final)
    frame = pd.read_parquet(table)
    assert frame.job_id.is_unique and len(frame) == 3
    history = duckdb.sql(f"SELECT count(*) FROM '{out / 'ledger.parquet'}' WHERE row_kind = 'job'")
    assert history.fetchall() == [(6,)]  # the attempts table: running + done per job
    assert pl.read_parquet(table).height == 3

    capsys.readouterr()
    assert run(app_factory(f"manifest={manifest}", "model=fake", "status=true"), REPO_ROOT) == 0
    printed = capsys.readouterr().out
    assert "3 jobs (done 3)" in printed and "generated/" in printed
