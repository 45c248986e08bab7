"""One batch run end to end: manifest -> jobs -> pending -> runner -> ledger -> summary.

The driver is the only writer of the ledger. Order of effects for a job: a `running` row when dispatched,
the worker writes files (renamed into place, sidecar last), then a final `done`/`failed`/`cancelled` row.
So a crash at any point leaves the job either recorded done with complete files, or not done.

A manifest with a prompts file (`prompts:` on a job entry) runs streaming (`_streaming_source`): its jobs are
produced lazily, sharded lazily and rendered `batch_jobs` at a time through the same runner and ledger, so
a million-prompt file never becomes a million RenderJobs at once. What that path still holds: the set of
completed job ids (from the ledger, plus those done by this run) and one batch of jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

from ltx2_batch.backends.models import model_root
from ltx2_batch.config import AppConfig, EngineKind
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import split_pending
from ltx2_batch.core.shard import Shard
from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.core.tool_paths import manifest_dirs
from ltx2_batch.export.contact_sheet import ContactSheet, write_contact_sheet
from ltx2_batch.ledger.live import LiveJobTable, write_job_table
from ltx2_batch.ledger.rebuild import finished_meta, rebuild_ledger, sidecar_row
from ltx2_batch.ledger.schema import JobStatus, RunContext, chunk_outcome_row, job_row, outcome_row
from ltx2_batch.ledger.store import LedgerStore, compact, completed_job_ids, new_run_id
from ltx2_batch.manifest.load import ManifestPlan, resolve_manifest_path
from ltx2_batch.manifest.prompts import check_prompts
from ltx2_batch.run.checks import check_engine, check_output
from ltx2_batch.run.planning import BatchPlan, chunk_count, open_jobs, output_dir_for, plan_table
from ltx2_batch.run.progress import Progress, RunStats, summary_table
from ltx2_batch.runners.base import Runner
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.verify import ADOPTED, ResumeCheck
from ltx2_batch.storage.writer_lock import hold_output_dir
from ltx2_batch.worker.spec import ExecutorSpec

_log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LedgerEvents:
    """RunEvents implementation: ledger rows + progress lines + run statistics."""

    def __init__(
        self,
        store: LedgerStore,
        ctx: RunContext,
        progress: Progress,
        stats: RunStats,
        after_done: Callable[[RenderJob], None] | None = None,
    ) -> None:
        self._store = store
        self._after_done = after_done  # runs once the job's done row is durable (fsynced)
        self._ctx = ctx
        self._progress = progress
        self._stats = stats
        self._started: dict[str, tuple[float, datetime]] = {}
        self._ready_at = time.monotonic()  # built as its batch goes to the runner: jobs are ready now

    def job_started(self, job: RenderJob, attempt: int, worker: str) -> None:
        now = _now()
        self._started[job.job_id] = (time.monotonic(), now)
        self._store.append(
            job_row(
                self._ctx,
                job,
                JobStatus.RUNNING,
                attempt=attempt,
                worker=worker,
                started_at=now,
                queue_s=self._queue_s(job),
            )
        )
        self._progress.job_started(job.name, worker, attempt)

    def chunk_finished(self, job: RenderJob, chunk: ChunkOutcome, attempt: int) -> None:
        self._store.append(chunk_outcome_row(self._ctx, job, chunk, attempt=attempt, finished_at=_now()))
        resumed = chunk.status is OutcomeStatus.RESUMED
        self._progress.chunk_finished(job.name, chunk.index, chunk.count, chunk.render_s, resumed)

    def job_stepped(self, job: RenderJob, step: StepEvent, attempt: int) -> None:  # noqa: ARG002 - RunEvents
        self._progress.job_stepped(job.name, step)

    def _queue_s(self, job: RenderJob) -> float:
        """Seconds from when the job was ready to dispatch (its batch reached the runner) to its start."""
        started = self._started.get(job.job_id, (time.monotonic(), None))[0]
        return started - self._ready_at

    def job_finished(self, job: RenderJob, outcome: JobOutcome, attempt: int) -> None:
        # a retried attempt keeps its start for the next one's row; a final outcome releases it
        get = self._started.get if not outcome.is_final else self._started.pop
        t0, started_at = get(job.job_id, None) or (time.monotonic(), _now())
        row = outcome_row(
            self._ctx,
            job,
            outcome,
            attempt=attempt,
            started_at=started_at,
            finished_at=_now(),
            queue_s=self._queue_s(job),
        )
        self._store.append(row)
        if outcome.status is OutcomeStatus.DONE and self._after_done is not None:
            self._after_done(job)
        if outcome.is_final:
            self._stats.statuses[outcome.status.value] += 1
            self._stats.render_s += outcome.render_s
            self._stats.frames += outcome.frames_written
        self._progress.job_finished(job.name, outcome.status.value, time.monotonic() - t0, outcome.error)


@dataclass
class Interrupts:
    """What SIGINT/SIGTERM did. The first signal only asks to stop (dispatch ends, in-flight work is
    cancelled by the runner); it interrupts the main thread only while `interruptible` is set, i.e. while
    a local render runs there (chunk rows are written with it cleared), so it never lands inside a ledger
    append or a runner's shutdown. Ray runs poll `stop` every 0.2 s."""

    stop: threading.Event = field(default_factory=threading.Event)
    interruptible: threading.Event = field(default_factory=threading.Event)
    signum: int | None = None
    closing: bool = False  # runners are shutting down: signals only record themselves

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def _interrupts(state: Interrupts) -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        state.signum = state.signum or signum
        state.stop.set()
        if state.interruptible.is_set() and not state.closing:
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
    signal_exit_code: int = 130

    @property
    def exit_code(self) -> int:
        if self.interrupted or self.stats.cancelled:
            return self.signal_exit_code
        return 1 if self.stats.failed else 0


def make_runner(cfg: AppConfig, spec: ExecutorSpec, interruptible: threading.Event) -> Runner:
    if cfg.engine.kind is EngineKind.ray:
        from ltx2_batch.runners.ray import RayRunner

        return RayRunner(cfg.engine, spec)
    from ltx2_batch.runners.local import LocalRunner
    from ltx2_batch.worker.spec import build_executor

    return LocalRunner(lambda: build_executor(spec, "local-0"), interruptible=interruptible)


@dataclass(frozen=True)
class _Source:
    """What a run renders: identity for the ledger, and its work as (pending, skipped) batches."""

    plan: BatchPlan
    manifest_source: str
    manifest_sha256: str
    batches: Iterable[tuple[tuple[RenderJob, ...], tuple[RenderJob, ...]]]
    rejected: Mapping[str, str] = field(default_factory=dict)  # done jobs whose files failed verification


def run_batch(cfg: AppConfig, project_root: Path) -> RunReport:
    check_engine(cfg.engine)
    check_output(cfg.output)
    manifest_path = resolve_manifest_path(cfg.manifest, manifest_dirs(project_root))
    if cfg.ledger_rebuild:
        _rebuild(output_dir_for(cfg, manifest_path, project_root), cfg.shard)
    return _execute(cfg, project_root, _streaming_source(cfg, project_root, manifest_path))


def _without_finished(
    pending: tuple[RenderJob, ...],
    skipped: tuple[RenderJob, ...],
    finished: set[str],
    rejected: Mapping[str, str],
) -> tuple[tuple[RenderJob, ...], tuple[RenderJob, ...]]:
    """(pending, skipped) with the pending jobs another run finished meanwhile moved to skipped."""
    late = {j.job_id for j in pending if j.job_id in finished} - set(rejected)
    if not late:
        return pending, skipped
    still_pending = tuple(j for j in pending if j.job_id not in late)
    return still_pending, (*skipped, *(j for j in pending if j.job_id in late))


def _execute(cfg: AppConfig, project_root: Path, source: _Source) -> RunReport:
    """`_render_all` while holding the output dir's writer lock: a second launch into it is refused."""
    with hold_output_dir(source.plan.output_dir, cfg.shard):
        return _render_all(cfg, project_root, source)


def _render_all(cfg: AppConfig, project_root: Path, source: _Source) -> RunReport:  # noqa: PLR0912, PLR0915 - one run's lifecycle (ledger, runner, interrupts, teardown), read in order
    """Render every batch through one runner (warm across batches); the ledger records as jobs finish."""
    output_dir, fingerprint = source.plan.output_dir, source.plan.model_fingerprint
    run_id = new_run_id()
    ctx = RunContext(
        run_id=run_id,
        model_name=cfg.model.name,
        model_fingerprint=fingerprint,
        manifest_path=source.manifest_source,
        manifest_sha256=source.manifest_sha256,
    )
    spec = ExecutorSpec(
        # settled here, on the driver: a Ray worker's environment and launch dir may not be the driver's
        model=replace(cfg.model, root=str(model_root(cfg.model, project_root))),
        output=cfg.output,
        project_root=str(project_root),
        output_dir=str(output_dir),
        run=ctx,
        verify=cfg.verify,
    )
    layout = OutputLayout(output_dir)
    stats = RunStats()
    state = Interrupts()
    started = time.monotonic()
    runner: Runner | None = None
    store: LedgerStore | None = None
    live: LiveJobTable | None = None
    try:
        with _interrupts(state):
            try:
                # Read again under the writer lock: a run that finished while this one planned is not
                # rendered twice (its done jobs move to skipped; ones that failed verification stay).
                finished = set() if cfg.force else completed_job_ids(output_dir)
                for batch in source.batches:
                    pending, skipped = _without_finished(*batch, finished, source.rejected)
                    stats.total += len(pending) + len(skipped)
                    stats.skipped += len(skipped)
                    if not pending:
                        continue  # nothing to render: no rows, no Ray, no model
                    if store is None:
                        store = LedgerStore(output_dir, run_id)
                        live = LiveJobTable(output_dir, cfg.ledger_refresh_s)
                        live.start()
                    for job in skipped:
                        store.append(job_row(ctx, job, JobStatus.SKIPPED, output_path=str(layout.video(job))))
                    _record_rejected(store, ctx, pending, source.rejected)
                    if not cfg.force:
                        pending, adopted = _adopt_finished(store, ctx, layout, pending, source.rejected)
                        stats.skipped += len(adopted)
                        if not cfg.output.keep_chunks:
                            _discard_chunks(layout, adopted)  # their done rows are durable now
                        if not pending:
                            continue
                    if cfg.force:
                        _discard_chunks(layout, pending)
                    runner = runner or make_runner(cfg, spec, state.interruptible)
                    # a chained job's resume state goes once its done row is durable (not before: a crash
                    # in between would leave a job neither recorded done nor resumable)
                    tidy = None if cfg.output.keep_chunks else (lambda job: _discard_chunks(layout, (job,)))
                    progress = Progress(len(pending), enabled=cfg.progress)
                    events = LedgerEvents(store, ctx, progress, stats, after_done=tidy)
                    try:
                        runner.run(pending, events, state.stop)
                    finally:  # a live display ends before anything else is printed
                        progress.close()
                    if state.stop.is_set():
                        break
            except KeyboardInterrupt:
                state.stop.set()
            finally:
                state.closing = True
                state.interruptible.clear()
                if runner is not None:
                    runner.close()
    finally:
        if live is not None:
            live.stop()
        if store is not None:
            store.close()
        stats.wall_s = time.monotonic() - started
    has_ledger = (output_dir / "ledger").exists()
    ledger_path = compact(output_dir) if has_ledger else None  # journals stay readable if never reached
    if has_ledger:
        write_job_table(output_dir)  # the one-row-per-job table, exact after the compaction
    sheet = write_contact_sheet(output_dir) if has_ledger else None  # every done job of the output dir
    return RunReport(
        source.plan,
        stats,
        ledger_path,
        interrupted=state.stop.is_set(),
        contact_sheet=sheet,
        signal_exit_code=state.exit_code,
    )


def _rebuild(output_dir: Path, shard: str | None) -> None:
    with hold_output_dir(output_dir, shard):
        report = rebuild_ledger(output_dir)
    aside = f"; the unreadable ledger was kept as {report.moved_aside}" if report.moved_aside else ""
    skipped = f"; {len(report.rejected)} sidecar(s) not trusted" if report.rejected else ""
    print(f"ledger rebuilt: {report.restored} done job(s) restored from sidecars{aside}{skipped}")


def _adopt_finished(
    store: LedgerStore,
    ctx: RunContext,
    layout: OutputLayout,
    pending: tuple[RenderJob, ...],
    rejected: Mapping[str, str],
) -> tuple[tuple[RenderJob, ...], tuple[RenderJob, ...]]:
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


def _record_rejected(
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


def _discard_chunks(layout: OutputLayout, jobs: Iterable[RenderJob]) -> None:
    """Chained jobs' chunk folders (resume state): for `force=true` (render again from scratch, not from old
    chunks) and once a job's done row is durable (output.keep_chunks keeps them)."""
    for job in jobs:
        if job.is_chained:
            shutil.rmtree(layout.chunk_dir(job), ignore_errors=True)


def plan_streaming(cfg: AppConfig, project_root: Path, limit: int = 50) -> str:
    """`plan=true`: the first `limit` jobs of this shard and streamed totals. Holds `limit` jobs, not
    all (a prompts file is read once, row by row)."""
    manifest_path = resolve_manifest_path(cfg.manifest, manifest_dirs(project_root))
    stream, mine, output_dir = open_jobs(cfg, project_root, manifest_path)
    layout = OutputLayout(output_dir)
    check = ResumeCheck(layout, cfg.verify)
    completed = set() if cfg.force else completed_job_ids(output_dir)
    head: list[RenderJob] = []
    total = done = chunks = frames = 0
    for job in mine:
        total += 1
        done += job.job_id in completed and check(job)
        chunks += chunk_count(job)
        frames += job.num_frames
        if len(head) < limit:
            head.append(job)
    split = split_pending(head, completed, check, force=cfg.force)
    first = BatchPlan(
        ManifestPlan(stream.source, stream.sha256, ()),
        tuple(head),
        split.pending,
        split.skipped,
        output_dir,
        stream.model_fingerprint,
    )
    table = plan_table(first, limit).rsplit("\n", 1)[0]
    more = f"\n... {total - len(head)} more jobs" if total > len(head) else ""
    totals = f"{total} jobs ({total - done} pending, {done} already done), {chunks} pipeline calls"
    streamed = " (streamed; repeats count per row)" if stream.templates else ""
    return f"{table}{more}\n{totals}, {frames} frames -> {output_dir}{streamed}"


def _streaming_source(cfg: AppConfig, project_root: Path, manifest_path: Path) -> _Source:
    """Every manifest: validate up front, then this shard's jobs as batches (`ManifestStream.batches`:
    the held jobs are one batch, prompt-file rows come `batch_jobs` at a time), each split into pending
    and already done.

    `skipped` rows are written only for batches that render something, so rerunning a finished
    million-job dataset appends nothing. A prompt repeated in the file is rendered once (same job id).
    """
    stream, _, output_dir = open_jobs(cfg, project_root, manifest_path)
    for template in stream.templates:  # every row read once before the first render, as plan=true does
        check_prompts(template.source)
    shard = Shard.parse(cfg.shard) if cfg.shard else None
    layout = OutputLayout(output_dir)
    completed = completed_job_ids(output_dir)
    check = ResumeCheck(layout, cfg.verify)

    dispatched: set[str] = set()  # a prompt repeated across batches renders once, `force` or not

    def batches() -> Iterator[tuple[tuple[RenderJob, ...], tuple[RenderJob, ...]]]:
        for batch in stream.batches(shard, max(cfg.batch_jobs, 1)):
            fresh = [job for job in batch if job.job_id not in dispatched]
            split = split_pending(fresh, completed, check, force=cfg.force)
            dispatched.update(job.job_id for job in split.pending)
            yield split.pending, split.skipped
            completed.update(job.job_id for job in split.pending if layout.outputs_exist(job))

    plan = BatchPlan(
        ManifestPlan(stream.source, stream.sha256, ()), (), (), (), output_dir, stream.model_fingerprint
    )
    return _Source(plan, stream.source, stream.sha256, batches(), check.rejected)


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
