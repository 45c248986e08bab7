"""The live job table without a model: folding journal tails equals rebuilding from the whole ledger,
through new runs, retries and a journal compacted away by another launch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from ltx2_batch.ledger.live import LiveJobTable, job_states, jobs_path, write_job_table
from ltx2_batch.ledger.schema import JobStatus, job_row
from ltx2_batch.ledger.store import LedgerStore, compact, read_rows
from tests.unit.test_ledger import ctx_for, make_job

JOBS = [make_job(i) for i in range(4)]


def _state(output_dir: Path) -> dict[str, tuple[str, int]]:
    table = pq.read_table(jobs_path(output_dir))
    assert len(set(table["job_id"].to_pylist())) == table.num_rows  # one row per job
    return {r["job_name"]: (r["status"], r["attempts"]) for r in table.to_pylist()}


def _rebuilt(output_dir: Path) -> dict[str, tuple[str, int]]:
    table = job_states(read_rows(output_dir))
    return {r["job_name"]: (r["status"], r["attempts"]) for r in table.to_pylist()}


def test_folding_tails_equals_rebuilding(tmp_path: Path) -> None:
    live = LiveJobTable(tmp_path)
    first = ctx_for("20261201T000000000000Z-aaaaaa")
    with LedgerStore(tmp_path, first.run_id, fsync=False) as store:
        live.refresh()
        assert _state(tmp_path) == {}
        store.append(job_row(first, JOBS[0], JobStatus.RUNNING, attempt=1))
        live.refresh()
        assert _state(tmp_path) == {"job0": ("running", 1)} == _rebuilt(tmp_path)
        store.append(job_row(first, JOBS[0], JobStatus.RETRIED, attempt=1))
        store.append(job_row(first, JOBS[0], JobStatus.RUNNING, attempt=2))
        store.append(job_row(first, JOBS[1], JobStatus.RUNNING, attempt=1))
        store.append(job_row(first, JOBS[1], JobStatus.FAILED, attempt=1))
        live.refresh()
        assert _state(tmp_path) == {"job0": ("running", 2), "job1": ("failed", 1)} == _rebuilt(tmp_path)
        store.append(job_row(first, JOBS[0], JobStatus.DONE, attempt=2))
    compact(tmp_path)  # the journal is folded away: the next pass rebuilds from ledger.parquet
    second = ctx_for("20261201T010000000000Z-bbbbbb")
    with LedgerStore(tmp_path, second.run_id, fsync=False) as store:
        store.append(job_row(second, JOBS[0], JobStatus.SKIPPED))  # a skip does not change the state
        store.append(job_row(second, JOBS[1], JobStatus.RUNNING, attempt=1))
        store.append(job_row(second, JOBS[1], JobStatus.DONE, attempt=1))
        live.refresh()
        expected = {"job0": ("done", 2), "job1": ("done", 2)}
        assert _state(tmp_path) == expected == _rebuilt(tmp_path)
    write_job_table(tmp_path)
    assert _state(tmp_path) == expected


def test_the_refresh_thread_keeps_the_file_fresh_and_stops(tmp_path: Path) -> None:
    run = ctx_for("20261201T020000000000Z-cccccc")
    live = LiveJobTable(tmp_path, interval_s=0.05)
    with LedgerStore(tmp_path, run.run_id, fsync=False) as store:
        live.start()
        try:
            store.append(job_row(run, JOBS[2], JobStatus.RUNNING, attempt=1))
            store.append(job_row(run, JOBS[2], JobStatus.DONE, attempt=1))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # polled: only the thread writes the file here
                if jobs_path(tmp_path).exists() and _state(tmp_path) == {"job2": ("done", 1)}:
                    break
                threading.Event().wait(0.02)
        finally:
            live.stop()
    assert _state(tmp_path) == {"job2": ("done", 1)}
