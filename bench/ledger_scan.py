"""Ledger costs at scale: append (+/- fsync), resume scan from journal and from Parquet, compaction.

    PYTHONPATH=. python bench/ledger_scan.py [--rows 100000] [--fsync-rows 2000] [--dir /tmp/somewhere]

Writes `--rows` rows (half `running`, half `done`/`failed`, one pair per job, like a real run) to one
journal without fsync, times `completed_job_ids` on the journal, compacts, and times it again on the
Parquet file. A separate, smaller journal measures the per-append cost with fsync (what a real run pays).
Numbers are single runs on whatever machine runs this; compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, with_job_id
from ltx2_batch.ledger.schema import JobStatus, LedgerRow, RunContext, job_row
from ltx2_batch.ledger.store import (
    LedgerStore,
    compact,
    completed_job_ids,
    journal_path,
    new_run_id,
    parquet_path,
    read_rows,
)

T = TypeVar("T")
PROMPT = "A slow dolly shot through a rain-soaked neon market at night, steam rising from food stalls, " * 2


def build_rows(ctx: RunContext, count: int) -> list[LedgerRow]:
    rows = []
    for i in range(count // 2):
        job = RenderJob(
            name=f"shot{i:06d}", prompt=f"{PROMPT} take {i}", width=768, height=512, num_frames=121,
            frame_rate=24.0, seed=i, pipeline=PipelineKind.TI2VID, mode=RenderMode.VIDEO,
            tags=(("scene", str(i // 100)),), index=i,
        )  # fmt: skip
        job = with_job_id(job, "fp-bench")
        rows.append(job_row(ctx, job, JobStatus.RUNNING, attempt=1, worker=f"w{i % 8}", device="cuda:0"))
        final = JobStatus.FAILED if i % 50 == 0 else JobStatus.DONE
        rows.append(
            job_row(ctx, job, final, attempt=1, worker=f"w{i % 8}", device="cuda:0", render_s=41.5,
                    total_s=44.0, output_path=f"/out/generated/{job.job_id}.mp4", frames_written=121)
        )  # fmt: skip
    return rows


def append_all(output_dir: Path, rows: list[LedgerRow], run_id: str, fsync: bool) -> float:
    """Seconds spent in `append` only (rows are built beforehand)."""
    with LedgerStore(output_dir, run_id, fsync=fsync) as store:
        start = time.perf_counter()
        for row in rows:
            store.append(row)
        return time.perf_counter() - start


def timed(label: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = fn()
    print(f"{label:<44} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--fsync-rows", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=None, help="default: a temp dir, removed afterwards")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        run(root, args.rows, args.fsync_rows)
    finally:
        if args.dir is None:
            shutil.rmtree(root)


def run(root: Path, rows_wanted: int, fsync_rows: int) -> None:
    output_dir = root / "out"
    run_id = new_run_id()
    rows = build_rows(
        RunContext(run_id=run_id, model_name="ltx-2-19b", model_fingerprint="fp-bench"), rows_wanted
    )
    seconds = append_all(output_dir, rows, run_id, fsync=False)
    size = journal_path(output_dir, run_id).stat().st_size
    print(f"rows: {len(rows):,}   journal: {size / 1e6:.1f} MB   ({size / len(rows):.0f} B/row)")
    print(f"{'append, no fsync':<44} {seconds:8.3f} s   {seconds / len(rows) * 1e3:.4f} ms/append")

    fsync_dir, fsync_run = root / "fsync", new_run_id()
    fsync_rows_list = build_rows(RunContext(fsync_run, "ltx-2-19b", "fp-bench"), fsync_rows)
    seconds = append_all(fsync_dir, fsync_rows_list, fsync_run, fsync=True)
    per_append_ms = seconds / len(fsync_rows_list) * 1e3
    print(f"{'append, fsync per row':<44} {seconds:8.3f} s   {per_append_ms:.4f} ms/append")

    done = timed("completed_job_ids, from the journal", lambda: completed_job_ids(output_dir))
    timed("read_rows, from the journal", lambda: read_rows(output_dir))
    timed("compact (journal -> ledger.parquet)", lambda: compact(output_dir))
    print(f"ledger.parquet: {parquet_path(output_dir).stat().st_size / 1e6:.1f} MB")
    again = timed("completed_job_ids, from ledger.parquet", lambda: completed_job_ids(output_dir))
    timed("read_rows, from ledger.parquet", lambda: read_rows(output_dir))
    timed("compact again (nothing new)", lambda: compact(output_dir))
    if done != again:
        raise SystemExit("resume answer changed across compaction")
    print(f"completed jobs: {len(again):,} of {len(rows) // 2:,}")


if __name__ == "__main__":
    main()
