"""The live job table: `<output_dir>/jobs.parquet`, one row per job with its latest state, kept fresh
while a run goes, so DuckDB, polars and pandas read the run's state during it as well as after it.

    <output_dir>/ledger/journal-<run_id>.jsonl   every row as it happens (store.py; the source of truth)
    <output_dir>/ledger.parquet                   every row of every finished run: attempts and chunks
    <output_dir>/jobs.parquet                     one row per job: its latest job row, plus `attempts`

A job's state is its latest job row, `skipped` rows ignored (the resume rule of store.py); `attempts`
counts the attempts ever started (its `running` rows, over all runs). During a run the row says
`running` while a worker has the job, then `done`, `failed`, `retried` or `cancelled`.

Cost, bounded whatever the run's size: a `LiveJobTable` thread in the driver builds the table once at
the start of a run (from ledger.parquet and the journals), then every `interval_s` parses only the
journal bytes appended since its last pass (every journal of the output dir: other launches' shards
show up too), folds their latest rows into the table it holds (an anti-join on job_id and a concat in
Arrow: work in the number of jobs, never in the history, and never per row), and replaces the file
atomically (readers see the old or the new file, never part of one). A pass waits at least ten times
as long as the previous one took, so refreshing never takes more than about a tenth of a core. A
journal that vanished (another launch's end-of-run compaction folded it) means one full rebuild. After
the run the driver compacts the journals and rebuilds the table once more from the compacted ledger.

Must not import torch or Ray, and never fails a run: a refresh that fails is logged and retried at the
next pass (the journal keeps every row).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ltx2_batch.ledger.schema import LEDGER_SCHEMA
from ltx2_batch.ledger.store import (
    latest_job_rows,
    list_journals,
    read_journal_span,
    read_rows_upto,
    write_parquet_atomically,
)

_log = logging.getLogger(__name__)

JOBS_NAME = "jobs.parquet"
JOBS_SCHEMA = LEDGER_SCHEMA.append(pa.field("attempts", pa.int32()))
_COST_FACTOR = 10  # wait >= 10x a pass's duration before the next one


def jobs_path(output_dir: Path) -> Path:
    """Where an output dir's job table is: `<output_dir>/jobs.parquet`."""
    return Path(output_dir) / JOBS_NAME


def job_states(rows: pa.Table) -> pa.Table:
    """Ledger rows (any order-preserving read, oldest first) -> one row per job, with `attempts`."""
    latest = latest_job_rows(rows)
    counts = _attempt_counts(rows)
    return _with_attempts(latest, counts)


def _attempt_counts(rows: pa.Table) -> pa.Table:
    started = rows.filter(pc.and_(pc.equal(rows["row_kind"], "job"), pc.equal(rows["status"], "running")))
    counts = started.group_by("job_id", use_threads=False).aggregate([("job_id", "count")])
    return counts.rename_columns(["job_id", "attempts"])


def _with_attempts(latest: pa.Table, counts: pa.Table) -> pa.Table:
    """`latest` with an `attempts` column looked up from `counts` (0 where a job has none), in order."""
    where = pc.index_in(latest["job_id"], value_set=counts["job_id"])
    attempts = pc.fill_null(pc.take(counts["attempts"], where), 0).cast(pa.int32())
    return latest.append_column(JOBS_SCHEMA.field("attempts"), attempts)


def fold(states: pa.Table, new_rows: pa.Table) -> pa.Table:
    """The job table after `new_rows` (rows appended since `states` was built, oldest first)."""
    latest = latest_job_rows(new_rows)
    if latest.num_rows == 0:
        return states
    changed = latest["job_id"]
    mine = pc.is_in(states["job_id"], value_set=changed)
    before = states.filter(mine).select(["job_id", "attempts"])
    counts = _attempt_counts(new_rows)
    # attempts = attempts so far + running rows among the new ones
    where_before = pc.index_in(changed, value_set=before["job_id"])
    where_new = pc.index_in(changed, value_set=counts["job_id"])
    total = pc.add(
        pc.fill_null(pc.take(before["attempts"], where_before), 0),
        pc.fill_null(pc.take(counts["attempts"], where_new), 0),
    ).cast(pa.int32())
    updated = latest.append_column(JOBS_SCHEMA.field("attempts"), total)
    return pa.concat_tables([states.filter(pc.invert(mine)), updated])


def write_job_table(output_dir: Path) -> Path:
    """Rebuild `jobs.parquet` from everything on disk (the end of a run, or `ltx2-batch status`)."""
    rows, _ = read_rows_upto(output_dir)
    target = jobs_path(output_dir)
    write_parquet_atomically(job_states(rows), target)
    return target


class LiveJobTable:
    """Keeps `<output_dir>/jobs.parquet` fresh from a background thread while a run writes its journal.

    `refresh()` does one pass synchronously (the thread calls it; tests may too). `stop()` ends the
    thread without a last pass: the driver rebuilds the table after compacting.
    """

    def __init__(self, output_dir: Path, interval_s: float = 5.0) -> None:
        self._output_dir = Path(output_dir)
        self._interval = max(float(interval_s), 0.05)
        self._states: pa.Table | None = None
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the refresh thread: one pass at once, then one per interval (longer when a pass is slow)."""
        self._thread = threading.Thread(target=self._loop, name="ltx2-live-ledger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it; a pass in progress finishes, no last one runs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def invalidate(self) -> None:
        """The next refresh rebuilds the table from everything in the output dir (its ledger.parquet was
        replaced under it: a bucket's mirror, ledger/parts.py)."""
        with self._lock:
            self._states = None

    def _loop(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            started = time.monotonic()
            try:
                self.refresh()
            except Exception:  # the live view must never end a run; the journal has every row
                _log.warning("live job table: refresh failed (retried next pass)", exc_info=True)
            wait = max(self._interval, _COST_FACTOR * (time.monotonic() - started))

    def refresh(self) -> Path:
        """Fold the journal bytes written since the last pass into the table and replace the file (a full
        rebuild when a journal vanished or was folded into ledger.parquet meanwhile)."""
        with self._lock:
            target = jobs_path(self._output_dir)
            journals = list_journals(self._output_dir)
            vanished = any(path not in journals for path in self._offsets)
            spans = None if self._states is None or vanished else self._new_spans(journals)
            if spans is None:
                rows, self._offsets = read_rows_upto(self._output_dir)
                self._states = job_states(rows)
            else:
                new_rows, self._offsets = spans
                if new_rows.num_rows == 0 and target.exists():
                    return target  # nothing new: the file is current
                self._states = fold(self._states, new_rows)
            write_parquet_atomically(self._states, target)
            return target

    def _new_spans(self, journals: list[Path]) -> tuple[pa.Table, dict[Path, int]] | None:
        """The rows appended to each journal since the last pass, and the new offsets; None when a journal
        was folded between the listing and the read (its rows are in ledger.parquet now: rebuild)."""
        parts = []
        offsets = dict(self._offsets)
        for path in journals:
            span, offsets[path] = read_journal_span(path, offsets.get(path, 0))
            if span is None:
                return None
            parts.append(span)
        return (pa.concat_tables(parts) if parts else LEDGER_SCHEMA.empty_table()), offsets
