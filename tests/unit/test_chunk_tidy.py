"""A chained job's chunk folder (its resume state) is removed only once its done row is on disk: the driver's
ledger events run the tidy-up after the append, never before, and never for a job that did not finish."""

from __future__ import annotations

from pathlib import Path

from ltx2_batch.core.jobs import RenderJob, RenderMode
from ltx2_batch.core.outcome import JobOutcome, OutcomeStatus
from ltx2_batch.ledger.schema import RunContext
from ltx2_batch.ledger.store import LedgerStore, completed_job_ids
from ltx2_batch.run.events import LedgerEvents
from ltx2_batch.run.progress import Progress, RunStats
from ltx2_batch.run.resume import discard_chunks
from ltx2_batch.storage.layout import OutputLayout
from tests.unit.test_ledger import make_job


def test_chunk_frames_go_after_the_done_row_and_only_for_done_jobs(tmp_path: Path) -> None:
    layout = OutputLayout(tmp_path)
    done_job, failed_job = make_job(1, RenderMode.CHAINED), make_job(2, RenderMode.CHAINED)
    for job in (done_job, failed_job):
        layout.chunk_dir(job).mkdir(parents=True)
        layout.chunk_media(job, 0).write_bytes(b"frames")
        layout.chunk_latent(job, 0).write_bytes(b"latents")
    seen_done_row: list[bool] = []

    def tidy(job: RenderJob) -> None:
        seen_done_row.append(job.job_id in completed_job_ids(tmp_path))  # durable before we delete
        discard_chunks(layout, (job,))

    store = LedgerStore(tmp_path, "run1")
    ctx = RunContext(
        run_id="run1", model_name="m", model_fingerprint="f", manifest_path="x", manifest_sha256="s"
    )
    events = LedgerEvents(store, ctx, Progress(2, enabled=False), RunStats(), after_done=tidy)
    events.job_finished(
        failed_job, JobOutcome(job_id=failed_job.job_id, status=OutcomeStatus.FAILED, error="x"), 1
    )
    assert seen_done_row == [] and layout.chunk_media(failed_job, 0).is_file()
    events.job_finished(done_job, JobOutcome(job_id=done_job.job_id, status=OutcomeStatus.DONE), 1)
    store.close()
    assert seen_done_row == [True]
    assert not layout.chunk_dir(done_job).exists()  # the whole resume state
    assert layout.chunk_media(failed_job, 0).is_file() and layout.chunk_latent(failed_job, 0).is_file()
