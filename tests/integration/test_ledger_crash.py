"""A ledger writer killed with SIGKILL mid-append leaves only whole rows, and no lock that blocks compaction:
a real process appending in a loop, killed by signal (the rest of the ledger is tests/unit/test_ledger.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from ltx2_batch.ledger.store import compact, journal_path, read_rows
from tests.conftest import REPO_ROOT

_APPENDER = """
import sys
from pathlib import Path
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, with_job_id
from ltx2_batch.ledger.schema import RunContext, job_row
from ltx2_batch.ledger.store import LedgerStore

ctx = RunContext(run_id="killed", model_name="tiny", model_fingerprint="fp")
store = LedgerStore(Path(sys.argv[1]), "killed", fsync=False)
i = 0
while True:
    job = RenderJob(name=f"j{i}", prompt="x" * (i % 997), width=64, height=64, num_frames=9,
                    frame_rate=24, seed=i, pipeline=PipelineKind.TI2VID, mode=RenderMode.VIDEO)
    job = with_job_id(job, "fp")
    store.append(job_row(ctx, job, "done"))
    i += 1
    if i == 300:
        print("ready", flush=True)
"""


def test_sigkill_during_appends_leaves_only_whole_rows(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_APPENDER), str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    table = read_rows(tmp_path)
    count = table.num_rows
    assert count >= 300
    assert table["seq"].to_pylist() == list(range(count))  # contiguous: no row lost, none half-read
    assert all(len(job_id) == 16 for job_id in table["job_id"].to_pylist())
    # The dead writer's lock went with it: compaction folds the journal.
    assert pq.read_table(compact(tmp_path)).num_rows == count
    assert not journal_path(tmp_path, "killed").exists()
