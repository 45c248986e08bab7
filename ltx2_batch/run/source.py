"""What a launch renders: the validated manifest's jobs for this shard, as batches of pending and skipped.

Every manifest streams (`ManifestStream.batches`): the hand-written jobs are one batch, prompt-file rows come
`batch_jobs` at a time, so a million-prompt file never becomes a million RenderJobs at once. Each batch is
split into pending and already done (done rows whose files verify, `storage/verify.py`). What this holds:
the set of completed job ids (from the ledger, plus those done by this run) and one batch of jobs.
Must not: write anything (the session does) or load a model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ltx2_batch.config import AppConfig
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.scheduler import split_pending
from ltx2_batch.core.shard import Shard
from ltx2_batch.manifest.prompts import check_prompts
from ltx2_batch.run.planning import open_jobs
from ltx2_batch.run.rundir import RunDir


@dataclass(frozen=True)
class Batch:
    """Jobs planned together: those to render, and those already done in this output dir."""

    pending: tuple[RenderJob, ...]
    skipped: tuple[RenderJob, ...]


@dataclass(frozen=True)
class JobSource:
    """A launch's work and the identity the ledger records it under."""

    output_dir: str  # a path, or a bucket URL (run/rundir.py)
    manifest_source: str
    manifest_sha256: str
    model_fingerprint: str
    batches: Iterator[Batch]
    rejected: Mapping[str, str]  # done jobs whose files failed verification: job id -> why


def open_source(cfg: AppConfig, project_root: Path, manifest_path: Path, run_dir: RunDir) -> JobSource:
    """Validate the manifest (every prompts file read once, as `plan=true` does), then this shard's jobs as
    batches, each split into pending and already done.

    A prompt repeated in the file is rendered once (same job id), `force` or not. `skipped` rows are
    written only for batches that render something (the session's rule), so rerunning a finished
    million-job dataset appends nothing.
    """
    stream, _, output_dir = open_jobs(cfg, project_root, manifest_path)
    for template in stream.templates:
        check_prompts(template.source)
    shard = Shard.parse(cfg.shard) if cfg.shard else None
    completed = run_dir.completed_job_ids()
    check = run_dir.resume_check(cfg.verify)
    dispatched: set[str] = set()

    def batches() -> Iterator[Batch]:
        """This shard's jobs, batch by batch, split into pending and done; each job is dispatched once."""
        for jobs in stream.batches(shard, max(cfg.batch_jobs, 1)):
            fresh = [job for job in jobs if job.job_id not in dispatched]
            split = split_pending(fresh, completed, check, force=cfg.force)
            dispatched.update(job.job_id for job in split.pending)
            yield Batch(split.pending, split.skipped)
            completed.update(job.job_id for job in split.pending if run_dir.outputs_exist(job))

    return JobSource(
        output_dir=output_dir.text,
        manifest_source=stream.source,
        manifest_sha256=stream.sha256,
        model_fingerprint=stream.model_fingerprint,
        batches=batches(),
        rejected=check.rejected,
    )
