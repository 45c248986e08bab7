"""The live job table's cost: one refresh pass (fold the journal's new rows, rewrite jobs.parquet) on an
output dir that already holds `--jobs` finished jobs, against a full rebuild from the whole ledger, and
against the render time it rides along (`ledger_refresh_s` apart).

    PYTHONPATH=. python bench/live_ledger.py [--jobs 100000] [--new 200]

Compacts `--jobs` jobs' rows (running + done each) into ledger.parquet, then appends `--new` rows of a
new run to a journal in passes of 20 and times each `LiveJobTable.refresh()`. Prints seconds per pass
and the ratio of a pass to a full rebuild (`write_job_table`). Single runs: compare ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.ledger_scan import append_all, build_rows
from ltx2_batch.ledger.live import LiveJobTable, write_job_table
from ltx2_batch.ledger.schema import RunContext
from ltx2_batch.ledger.store import LedgerStore, compact, new_run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        old = RunContext(run_id=new_run_id(), model_name="tiny", model_fingerprint="fp-bench")
        append_all(out, build_rows(old, 2 * args.jobs), old.run_id, fsync=False)
        compact(out)
        start = time.perf_counter()
        write_job_table(out)
        rebuild = time.perf_counter() - start
        live = LiveJobTable(out)
        start = time.perf_counter()
        live.refresh()
        first = time.perf_counter() - start
        new = RunContext(run_id=new_run_id(), model_name="tiny", model_fingerprint="fp-bench")
        rows = build_rows(new, args.new)
        passes = []
        with LedgerStore(out, new.run_id, fsync=False) as store:
            for begin in range(0, len(rows), 20):
                for row in rows[begin : begin + 20]:
                    store.append(row)
                start = time.perf_counter()
                live.refresh()
                passes.append(time.perf_counter() - start)
    mean = sum(passes) / len(passes)
    print(f"{args.jobs:,} jobs in the table; full rebuild (write_job_table): {rebuild:.3f} s")
    print(f"first pass (builds the table): {first:.3f} s; a pass folding 20 new rows: {mean:.3f} s mean")
    print(f"pass / rebuild: {mean / rebuild:.2f}; passes run >= 10x their duration apart (>= 5 s by default)")


if __name__ == "__main__":
    main()
