"""One batch run end to end: manifest -> jobs -> pending -> runner -> ledger -> summary.

The driver is the only writer of the ledger. Order of effects for a job: a `running` row when dispatched,
the worker writes files (renamed into place, sidecar last), then a final `done`/`failed`/`cancelled` row.
So a crash at any point leaves the job either recorded done with complete files, or not done.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

from ltx2_batch.chaining.run import ChunkOutcome
from ltx2_batch.config import AppConfig, EngineKind
from ltx2_batch.contact_sheet import ContactSheet, write_contact_sheet
from ltx2_batch.execute import JobOutcome
from ltx2_batch.jobs import RenderJob
from ltx2_batch.layout import OutputLayout
from ltx2_batch.ledger.schema import JobStatus, RunContext, chunk_row, job_row
from ltx2_batch.ledger.store import LedgerStore, compact, completed_job_ids, new_run_id
from ltx2_batch.planning import BatchPlan, plan_batch
from ltx2_batch.progress import Progress, RunStats, summary_table
from ltx2_batch.runners.factory import ExecutorSpec


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LedgerEvents:
    """RunEvents implementation: ledger rows + progress lines + run statistics."""

    def __init__(self, store: LedgerStore, ctx: RunContext, progress: Progress, stats: RunStats) -> None:
        self._store = store
        self._ctx = ctx
        self._progress = progress
        self._stats = stats
        self._started: dict[str, tuple[float, datetime]] = {}
        self._run_started = time.monotonic()

    def job_started(self, job: RenderJob, attempt: int, worker: str) -> None:
        now = _now()
        self._started[job.job_id] = (time.monotonic(), now)
        self._store.append(
            job_row(self._ctx, job, JobStatus.RUNNING, attempt=attempt, worker=worker, started_at=now,
                    queue_s=time.monotonic() - self._run_started)
        )
        self._progress.job_started(job.name, worker, attempt)

    def chunk_finished(self, job: RenderJob, chunk: ChunkOutcome, attempt: int) -> None:
        self._store.append(
            chunk_row(self._ctx, job, JobStatus.DONE, chunk.index, chunk.count, attempt=attempt,
                      latent_path=chunk.latent_path, render_s=chunk.render_s, frames_written=chunk.frames,
                      finished_at=_now(), error="resumed from an earlier attempt" if chunk.status == "resumed"
                      else None)
        )
        self._progress.chunk_finished(job.name, chunk.index, chunk.count, chunk.render_s, chunk.status == "resumed")

    def job_finished(self, job: RenderJob, outcome: JobOutcome, attempt: int) -> None:
        t0, started_at = self._started.get(job.job_id, (time.monotonic(), _now()))
        status = JobStatus.FAILED if outcome.status == "retrying" else JobStatus(outcome.status)
        self._store.append(
            job_row(
                self._ctx, job, status, attempt=attempt, worker=outcome.worker, node=outcome.node,
                device=outcome.device, load_s=outcome.load_s, render_s=outcome.render_s,
                encode_s=outcome.encode_s, total_s=outcome.total_s, started_at=started_at, finished_at=_now(),
                output_path=outcome.output_path, thumbnail_path=outcome.thumbnail_path,
                sidecar_path=outcome.sidecar_path, frames_written=outcome.frames_written,
                duration_s=outcome.duration_s, error=outcome.error,
            )
        )
        if outcome.status != "retrying":
            self._stats.statuses[outcome.status] += 1
            self._stats.render_s += outcome.render_s
            self._stats.frames += outcome.frames_written
        self._progress.job_finished(job.name, outcome.status, time.monotonic() - t0, outcome.error)


@contextmanager
def _interrupts(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM: stop dispatching and interrupt the work in progress (once)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            return
        stop.set()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass(frozen=True)
class RunReport:
    plan: BatchPlan
    stats: RunStats
    ledger_path: Path | None
    interrupted: bool
    contact_sheet: ContactSheet | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted or self.stats.cancelled:
            return 130
        return 1 if self.stats.failed else 0


def make_runner(cfg: AppConfig, spec: ExecutorSpec) -> object:
    if cfg.engine.kind is EngineKind.ray:
        from ltx2_batch.runners.ray import RayRunner

        return RayRunner(cfg.engine, spec)
    from ltx2_batch.runners.factory import build_executor
    from ltx2_batch.runners.local import LocalRunner

    return LocalRunner(lambda: build_executor(spec, "local-0"))


def run_batch(cfg: AppConfig, project_root: Path) -> RunReport:
    batch = plan_batch(cfg, project_root, completed=completed_job_ids)
    stats = RunStats(total=len(batch.jobs), skipped=len(batch.skipped))
    if not batch.pending:
        ledger = compact(batch.output_dir) if (batch.output_dir / "ledger").exists() else None
        sheet = write_contact_sheet(batch.output_dir) if ledger else None
        return RunReport(batch, stats, ledger, interrupted=False, contact_sheet=sheet)

    run_id = new_run_id()
    ctx = RunContext(run_id=run_id, model_name=cfg.model.name, model_fingerprint=batch.model_fingerprint,
                     manifest_path=str(batch.manifest.source), manifest_sha256=batch.manifest.sha256)
    spec = ExecutorSpec(
        model=cfg.model, output=cfg.output, project_root=str(project_root), output_dir=str(batch.output_dir),
        run_info={"run_id": run_id, "model_name": cfg.model.name, "model_fingerprint": batch.model_fingerprint,
                  "manifest": str(batch.manifest.source), "manifest_sha256": batch.manifest.sha256},
    )
    progress = Progress(len(batch.pending), enabled=cfg.progress)
    stop = threading.Event()
    started = time.monotonic()
    store = LedgerStore(batch.output_dir, run_id)
    try:
        for job in batch.skipped:
            store.append(job_row(ctx, job, JobStatus.SKIPPED, output_path=str(OutputLayout(batch.output_dir)
                                                                              .video(job))))
        events = LedgerEvents(store, ctx, progress, stats)
        runner = make_runner(cfg, spec)
        with _interrupts(stop):
            try:
                runner.run(batch.pending, events, stop)  # type: ignore[attr-defined]
            except KeyboardInterrupt:
                stop.set()
    finally:
        store.close()
        stats.wall_s = time.monotonic() - started
    ledger_path = compact(batch.output_dir)  # journals stay readable for resume if this is never reached
    sheet = write_contact_sheet(batch.output_dir)  # every done job of the output dir, this run's and earlier
    return RunReport(batch, stats, ledger_path, interrupted=stop.is_set(), contact_sheet=sheet)


def format_report(report: RunReport) -> str:
    lines = [summary_table(report.stats)]
    if report.ledger_path:
        lines.append(f"ledger: {report.ledger_path}")
    lines.append(f"outputs: {report.plan.output_dir}")
    if report.contact_sheet and report.contact_sheet.entries:
        sheet = report.contact_sheet
        lines.append(f"contact sheet: {sheet.html_pages[0]} ({sheet.entries} clips)")
    if report.interrupted:
        lines.append("run interrupted: rerun the same command to resume")
    return "\n".join(lines)
