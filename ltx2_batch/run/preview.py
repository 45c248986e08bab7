"""`plan=true`: the job table of a launch and its totals, printed instead of rendering.

Streams like a run: the first `limit` jobs of this shard are held for the table, the rest only counted (a
prompts file is read once, row by row). Says which jobs a rerun would skip (done and verified).
Must not: write anything or load a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ltx2_batch.config import AppConfig
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.tool_paths import manifest_dirs
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.run.planning import chunk_count, open_jobs, open_run_dir

_HEADER = ("#", "name", "job_id", "pipeline", "mode", "size", "frames", "fps", "chunks", "seed", "state")


def preview(cfg: AppConfig, project_root: Path, limit: int = 50) -> str:
    """The table of the first `limit` jobs of this shard and the streamed totals of all of them."""
    manifest_path = resolve_manifest_path(cfg.manifest, manifest_dirs(project_root))
    stream, mine, output_dir = open_jobs(cfg, project_root, manifest_path)
    run_dir = open_run_dir(output_dir, cfg.output)  # read only: a bucket's ledger is read from a snapshot
    head: list[RenderJob] = []
    done_ids: set[str] = set()
    total = done = chunks = frames = 0
    try:
        check = run_dir.resume_check(cfg.verify)
        completed = set() if cfg.force else run_dir.completed_job_ids()
        for job in mine:
            total += 1
            if job.job_id in completed and check(job):
                done += 1
                done_ids.add(job.job_id)
            chunks += chunk_count(job)
            frames += job.num_frames
            if len(head) < limit:
                head.append(job)
    finally:
        run_dir.forget_reads()
    more = [f"... {total - len(head)} more jobs"] if total > len(head) else []
    streamed = " (streamed; repeats count per row)" if stream.templates else ""
    totals = (
        f"{total} jobs ({total - done} pending, {done} already done), {chunks} pipeline calls, "
        f"{frames} frames -> {output_dir.text}{streamed}"
    )
    return "\n".join([*job_table(head, done_ids), *more, totals])


def job_table(jobs: Sequence[RenderJob], done_ids: set[str]) -> list[str]:
    """One aligned line per job (and the header): what it renders and whether it is done."""
    rows = [
        (
            str(job.index),
            job.name[:40],
            job.job_id,
            job.pipeline.value,
            job.mode.value,
            f"{job.width}x{job.height}",
            str(job.num_frames),
            f"{job.frame_rate:g}",
            str(chunk_count(job)),
            str(job.seed),
            "done" if job.job_id in done_ids else "pending",
        )
        for job in jobs
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(_HEADER)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*_HEADER), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
