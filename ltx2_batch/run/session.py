"""One launch into one output dir, read top to bottom: open the session, render its batches, close it.

    run_batch(cfg, root)
      -> checks, the manifest's JobSource (run/source.py), the output dir's writer lock
      -> RunSession: render(batch) for each batch   (ledger and runner started on the first batch with work)
      -> close(): runner stopped, ledger compacted, job table and contact sheet written, RunReport

The driver is the only writer of the ledger. Order of effects for a job: a `running` row when dispatched,
the worker writes files (renamed into place, sidecar last), then a final `done`/`failed`/`cancelled` row.
So a crash at any point leaves the job either recorded done with complete files, or not done.
Must not: render (runners and workers do), or read the manifest itself (the JobSource does).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from ltx2_batch.backends.models import model_root
from ltx2_batch.config import AppConfig, EngineKind
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.shard import Shard
from ltx2_batch.core.tool_paths import manifest_dirs
from ltx2_batch.export.contact_sheet import write_contact_sheet
from ltx2_batch.ledger.live import LiveJobTable, write_job_table
from ltx2_batch.ledger.rebuild import rebuild_ledger
from ltx2_batch.ledger.schema import JobStatus, RunContext, job_row
from ltx2_batch.ledger.store import LedgerStore, compact, completed_job_ids, new_run_id
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.run.checks import check_engine, check_output
from ltx2_batch.run.events import LedgerEvents
from ltx2_batch.run.interrupts import Interrupts, catching_signals
from ltx2_batch.run.planning import output_dir_for
from ltx2_batch.run.progress import Progress, RunStats
from ltx2_batch.run.report import RunReport
from ltx2_batch.run.resume import adopt_finished, discard_chunks, record_rejected, without_finished
from ltx2_batch.run.source import Batch, JobSource, open_source
from ltx2_batch.runners.base import Runner
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.writer_lock import hold_output_dir
from ltx2_batch.worker.spec import RunSpec, WorkerSpec


def run_batch(cfg: AppConfig, project_root: Path) -> RunReport:
    """Render a manifest's pending jobs into its output dir (the writer lock held throughout)."""
    check_engine(cfg.engine)
    check_output(cfg.output)
    manifest_path = resolve_manifest_path(cfg.manifest, manifest_dirs(project_root))
    shard = Shard.parse(cfg.shard) if cfg.shard else None
    if cfg.ledger_rebuild:
        _rebuild(output_dir_for(cfg, manifest_path, project_root), shard)
    source = open_source(cfg, project_root, manifest_path)
    with hold_output_dir(source.output_dir, shard):
        session = RunSession(cfg, project_root, source)
        try:
            session.render_all()
        finally:
            report = session.close()
    return report


class RunSession:
    """A launch's rendering: one runner warm across its batches, one ledger journal, one set of stats."""

    def __init__(self, cfg: AppConfig, project_root: Path, source: JobSource) -> None:
        self._cfg = cfg
        self._source = source
        self._layout = OutputLayout(source.output_dir)
        self.ctx = RunContext(
            run_id=new_run_id(),
            model_name=cfg.model.name,
            model_fingerprint=source.model_fingerprint,
            manifest_path=source.manifest_source,
            manifest_sha256=source.manifest_sha256,
        )
        # settled here, on the driver: a Ray worker's environment and launch dir may not be the driver's
        model = replace(cfg.model, root=str(model_root(cfg.model, project_root)))
        self._worker = WorkerSpec(model=model, project_root=str(project_root))
        self._run = RunSpec(
            output=cfg.output, output_dir=str(source.output_dir), run=self.ctx, verify=cfg.verify
        )
        self.stats = RunStats()
        self.interrupts = Interrupts()
        self._started = time.monotonic()
        self._runner: Runner | None = None
        self.fatal: str | None = None  # why the run stopped before its jobs were done (the model cannot load)
        self._store: LedgerStore | None = None
        self._live: LiveJobTable | None = None
        # Read again under the writer lock: a run that finished while this one planned is not rendered
        # twice (its done jobs move to skipped; ones that failed verification stay pending).
        self._finished = set() if cfg.force else completed_job_ids(source.output_dir)

    def render_all(self) -> None:
        """Every batch of the source, until it is exhausted or a signal stops the run; the runner is
        stopped before this returns, with signals only recorded while it shuts down."""
        with catching_signals(self.interrupts) as interrupts:
            try:
                for batch in self._source.batches:
                    self.render(batch)
                    if interrupts.stop.is_set():
                        break
            except KeyboardInterrupt:
                interrupts.stop.set()
            finally:
                interrupts.begin_closing()
                if self._runner is not None:
                    self._runner.close()

    def render(self, batch: Batch) -> None:
        """Record one batch's skipped jobs and render its pending ones (adopting finished files first)."""
        pending, skipped = without_finished(
            batch.pending, batch.skipped, self._finished, self._source.rejected
        )
        self.stats.total += len(pending) + len(skipped)
        self.stats.skipped += len(skipped)
        if not pending:
            return  # nothing to render: no rows, no Ray, no model
        store = self._open_ledger()
        for job in skipped:
            store.append(job_row(self.ctx, job, JobStatus.SKIPPED, output_path=str(self._layout.video(job))))
        record_rejected(store, self.ctx, pending, self._source.rejected)
        if self._cfg.force:
            discard_chunks(self._layout, pending)
        else:
            pending, adopted = adopt_finished(store, self.ctx, self._layout, pending, self._source.rejected)
            self.stats.skipped += len(adopted)
            if not self._cfg.output.keep_chunks:
                discard_chunks(self._layout, adopted)  # their done rows are durable now
        if pending:
            self._dispatch(pending, store)

    def _dispatch(self, pending: tuple[RenderJob, ...], store: LedgerStore) -> None:
        runner = self._runner = self._runner or make_runner(
            self._cfg, self._worker, self._run, self.interrupts
        )
        # a chained job's resume state goes once its done row is durable (not before: a crash in between
        # would leave a job neither recorded done nor resumable)
        keep = self._cfg.output.keep_chunks
        tidy = None if keep else (lambda job: discard_chunks(self._layout, (job,)))
        progress = Progress(len(pending), enabled=self._cfg.progress)
        events = LedgerEvents(store, self.ctx, progress, self.stats, after_done=tidy, on_fatal=self._halt)
        try:
            runner.run(pending, events, self.interrupts.stop)
        finally:  # a live display ends before anything else is printed
            progress.close()

    def _halt(self, error: str) -> None:
        """A worker cannot load the model: stop dispatching (in-flight jobs are cancelled) and report once."""
        if self.fatal is None:
            self.fatal = error
        self.interrupts.stop.set()

    def _open_ledger(self) -> LedgerStore:
        """The run's journal and the live job table, opened for the first batch that renders."""
        if self._store is None:
            self._store = LedgerStore(self._source.output_dir, self.ctx.run_id)
            self._live = LiveJobTable(self._source.output_dir, self._cfg.ledger_refresh_s)
            self._live.start()
        return self._store

    def close(self) -> RunReport:
        """Close the journal, fold every journal into ledger.parquet, write the exact job table and the
        contact sheet (when this output dir has a ledger), and report."""
        output_dir = self._source.output_dir
        if self._live is not None:
            self._live.stop()
        if self._store is not None:
            self._store.close()
        self.stats.wall_s = time.monotonic() - self._started
        has_ledger = (output_dir / "ledger").exists()
        ledger_path = compact(output_dir) if has_ledger else None  # journals stay readable if never reached
        if has_ledger:
            write_job_table(output_dir)  # the one-row-per-job table, exact after the compaction
        sheet = write_contact_sheet(output_dir) if has_ledger else None  # every done job of the output dir
        return RunReport(
            output_dir,
            self.stats,
            ledger_path,
            interrupted=self.interrupts.stop.is_set() and self.fatal is None,
            contact_sheet=sheet,
            signal_exit_code=self.interrupts.exit_code,
            fatal=self.fatal,
        )


def make_runner(cfg: AppConfig, worker: WorkerSpec, run: RunSpec, interrupts: Interrupts) -> Runner:
    """The runner `engine.kind` names: warm Ray actors, or this process."""
    if cfg.engine.kind is EngineKind.ray:
        from ltx2_batch.runners.ray import RayRunner

        return RayRunner(cfg.engine, worker, run)
    from ltx2_batch.runners.local import LocalRunner
    from ltx2_batch.worker.spec import build_executor

    return LocalRunner(lambda: build_executor(worker, "local-0"), run, interruptible=interrupts.interruptible)


def _rebuild(output_dir: Path, shard: Shard | None) -> None:
    with hold_output_dir(output_dir, shard):
        report = rebuild_ledger(output_dir)
    aside = f"; the unreadable ledger was kept as {report.moved_aside}" if report.moved_aside else ""
    skipped = f"; {len(report.rejected)} sidecar(s) not trusted" if report.rejected else ""
    print(f"ledger rebuilt: {report.restored} done job(s) restored from sidecars{aside}{skipped}")
