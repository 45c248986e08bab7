"""`ltx2-batch status`: a run's state, read from its job table (one row per job, `ledger/live.py`).

Prints the output dir's counts per status and its most recently updated jobs. Read-only and model-free:
works during a run (from the journals the run is writing) and after it, from any machine that sees the
output dir (a bucket's is read from a local snapshot of its ledger: run/bucket.py, which also names the
launches holding its leases). Must not write anything or import torch or Ray.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from ltx2_batch.ledger.live import job_states
from ltx2_batch.ledger.store import read_rows_upto

_SHOWN = ("job_name", "status", "attempts", "queue_s", "render_s", "total_s", "worker", "output_path")


def status_text(output_dir: Path, limit: int = 20, shown: str | None = None) -> str:
    """Counts per status, then the `limit` most recently updated jobs (newest first). `shown`: the run
    dir's name as users know it, when `output_dir` is a local copy of a bucket's ledger (its URL)."""
    name = shown or str(output_dir)
    if not (Path(output_dir) / "ledger").exists() and not (Path(output_dir) / "ledger.parquet").exists():
        return f"{name}: no ledger yet (nothing has run into this output dir)"
    rows, _ = read_rows_upto(output_dir)
    states = job_states(rows)
    counts = states.group_by("status", use_threads=False).aggregate([("job_id", "count")]).to_pylist()
    by_status = sorted(counts, key=lambda c: c["status"])
    summary = ", ".join(f"{c['status']} {c['job_id_count']}" for c in by_status)
    order = pc.sort_indices(states, sort_keys=[("recorded_at", "descending")])
    recent = states.take(order[:limit]).select(list(_SHOWN)).to_pylist()
    lines = [f"{name}: {states.num_rows} jobs ({summary})"]
    table = [list(_SHOWN)] + [[_cell(row[k], name) for k in _SHOWN] for row in recent]
    widths = [max(len(r[i]) for r in table) for i in range(len(_SHOWN))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if states.num_rows > limit:
        lines.append(f"... {states.num_rows - limit} more (query {name}/jobs.parquet)")
    return "\n".join(lines)


def _cell(value: object, output_dir: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    if text.startswith(f"{output_dir}/"):
        return text[len(output_dir) + 1 :]
    return text[:48]
