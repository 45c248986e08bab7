"""What a rerun does with work an earlier launch left behind, before anything is dispatched.

- A job another run finished while this one planned is skipped, not rendered twice (`without_finished`).
- A job recorded done whose files failed verification gets a `retried` row saying why (`record_rejected`).
- A job with no done row whose files are whole (a worker finished it after its driver died) is adopted: it
  gets a done row from its sidecar instead of a second render (`adopt_finished`).
- A chained job's resume state goes once its done row is durable, or before `force=true` renders it again
  from scratch (`discard_chunks`).
Must not: render, or decide what is pending (core/scheduler.py's `split_pending` does).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterable, Mapping

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.ledger.rebuild import finished_meta, sidecar_row
from ltx2_batch.ledger.schema import JobStatus, RunContext, job_row
from ltx2_batch.ledger.store import LedgerStore
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.verify import ADOPTED

_log = logging.getLogger(__name__)
Jobs = tuple[RenderJob, ...]


def without_finished(
    pending: Jobs, skipped: Jobs, finished: set[str], rejected: Mapping[str, str]
) -> tuple[Jobs, Jobs]:
    """(pending, skipped) with the pending jobs another run finished meanwhile moved to skipped."""
    late = {j.job_id for j in pending if j.job_id in finished} - set(rejected)
    if not late:
        return pending, skipped
    still_pending = tuple(j for j in pending if j.job_id not in late)
    return still_pending, (*skipped, *(j for j in pending if j.job_id in late))


def adopt_finished(
    store: LedgerStore,
    ctx: RunContext,
    layout: OutputLayout,
    pending: Jobs,
    rejected: Mapping[str, str],
) -> tuple[Jobs, Jobs]:
    """Pending jobs whose files are already whole (a worker finished them after its driver died, so no
    done row was written) get that done row now instead of a second render. (pending, adopted)"""
    if not layout.sidecar_dir.is_dir():  # a fresh output dir: no sidecar, nothing to adopt
        return pending, ()
    keep, adopted = [], []
    for job in pending:
        meta = None if job.job_id in rejected else finished_meta(layout.root, job.job_id, layout.sidecar(job))
        if meta is None:
            keep.append(job)
            continue
        row = sidecar_row(ctx.run_id, layout.root, layout.sidecar(job), meta, ADOPTED)
        store.append(dataclasses.replace(row, job_index=job.index))
        _log.warning(
            "adopted %s (%s): its files were finished by run %s", job.name, job.job_id, meta.get("run_id")
        )
        adopted.append(job)
    return tuple(keep), tuple(adopted)


def record_rejected(
    store: LedgerStore, ctx: RunContext, pending: Iterable[RenderJob], rejected: Mapping[str, str]
) -> None:
    """A job recorded done whose files failed verification gets a `retried` row saying why, before it is
    rendered again (so the ledger tells why a done job was done twice)."""
    for job in pending:
        reason = rejected.get(job.job_id)
        if reason:
            _log.warning("re-rendering %s (%s): %s", job.name, job.job_id, reason)
            error = f"recorded done, but its files failed verification: {reason}; rendering again"
            store.append(job_row(ctx, job, JobStatus.RETRIED, error=error))


def discard_chunks(layout: OutputLayout, jobs: Iterable[RenderJob]) -> None:
    """Chained jobs' chunk folders (resume state): for `force=true` (render again from scratch, not from old
    chunks) and once a job's done row is durable (output.keep_chunks keeps them)."""
    for job in jobs:
        if job.is_chained:
            shutil.rmtree(layout.chunk_dir(job), ignore_errors=True)
