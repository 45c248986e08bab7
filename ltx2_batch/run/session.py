"""One launch into one output dir, read top to bottom: open the session, stream its batches, close it.

    run_batch(cfg, root)
      -> checks, the run dir (run/rundir.py: a folder, or a bucket), the manifest's JobSource
         (run/source.py), the run dir's writer lock (a bucket's lease)
      -> RunSession.render_all(): one runner takes the batches as an iterator (ledger and runner started on
         the first batch with work); each batch's skipped and adopted jobs are recorded when the runner
         pulls it, while the previous batch's last jobs still render (no drain at a batch boundary)
      -> close(): runner stopped, ledger compacted, job table and contact sheet written, RunReport

The driver is the only writer of the ledger. Order of effects for a job: a `running` row when dispatched,
the worker writes files (renamed into place, sidecar last; on a bucket then uploaded, sidecar last, and
confirmed), then a final `done`/`failed`/`cancelled` row. So a crash at any point leaves the job either
recorded done with complete files, or not done.
Must not: render (runners and workers do), or read the manifest itself (the JobSource does).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from itertools import chain
from pathlib import Path

from ltx2_batch.backends.models import model_root
from ltx2_batch.config import AppConfig, EngineKind
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.shard import Shard
from ltx2_batch.core.tool_paths import manifest_dirs
from ltx2_batch.errors import ConfigError
from ltx2_batch.ledger.rebuild import rebuild_ledger
from ltx2_batch.ledger.schema import JobStatus, RunContext, job_row
from ltx2_batch.ledger.store import LedgerStore, new_run_id
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.run.checks import check_engine, check_output
from ltx2_batch.run.events import LedgerEvents
from ltx2_batch.run.interrupts import Interrupts, catching_signals
from ltx2_batch.run.planning import open_run_dir, run_location
from ltx2_batch.run.progress import Progress, RunStats
from ltx2_batch.run.report import RunReport
from ltx2_batch.run.resume import record_rejected, without_finished
from ltx2_batch.run.rundir import LocalRunDir, RunDir
from ltx2_batch.run.source import Batch, JobSource, open_source
from ltx2_batch.runners.base import Runner
from ltx2_batch.storage.location import is_url
from ltx2_batch.storage.objects import check_store
from ltx2_batch.storage.writer_lock import hold_output_dir
from ltx2_batch.worker.spec import RunSpec, WorkerSpec


def run_batch(cfg: AppConfig, project_root: Path) -> RunReport:
    """Render a manifest's pending jobs into its output dir (the writer lock, or a bucket's lease, held
    throughout)."""
    check_engine(cfg.engine)
    check_output(cfg.output)
    manifest_path = resolve_manifest_path(cfg.manifest, manifest_dirs(project_root))
    shard = Shard.parse(cfg.shard) if cfg.shard else None
    run_dir = open_run_dir(run_location(cfg, manifest_path, project_root), cfg.output)
    if (cfg.export.dataset or cfg.export.webdataset) and is_url(cfg.export.dir):
        check_store(str(cfg.export.dir), cfg.output.endpoint_url)  # not found out after the renders
    if cfg.ledger_rebuild:
        _rebuild(run_dir, shard)
    source = open_source(cfg, project_root, manifest_path, run_dir)
    run_id = new_run_id()
    with run_dir.hold(shard, run_id) as held:
        session = RunSession(cfg, project_root, source, run_dir, run_id)
        if held is not None:  # a bucket's lease taken over (or not renewable): stop, as for a broken model
            held.on_lost = session.stop
            if held.lost is not None:  # lost before it could say so
                session.stop(held.lost)
        try:
            session.render_all()
        finally:
            report = session.close()
    return report


class RunSession:
    """A launch's rendering: one runner warm across its batches, one ledger journal, one set of stats."""

    def __init__(
        self,
        cfg: AppConfig,
        project_root: Path,
        source: JobSource,
        run_dir: RunDir,
        run_id: str | None = None,
    ) -> None:
        self._cfg = cfg
        self._source = source
        self._dir = run_dir
        self.ctx = RunContext(
            run_id=run_id or new_run_id(),
            model_name=cfg.model.name,
            model_fingerprint=source.model_fingerprint,
            manifest_path=source.manifest_source,
            manifest_sha256=source.manifest_sha256,
        )
        self._worker = worker_spec(cfg, project_root)
        self._run = RunSpec(
            output=cfg.output, output_dir=run_dir.location.text, run=self.ctx, verify=cfg.verify
        )
        self.stats = RunStats()
        self.interrupts = Interrupts()
        self._started = time.monotonic()
        self._runner: Runner | None = None
        self.fatal: str | None = None  # why the run stopped before its jobs were done (the model cannot load)
        self._store: LedgerStore | None = None
        self._progress: Progress | None = None  # made with the first batch that renders
        self._events: LedgerEvents | None = None
        # Read again under the writer lock: a run that finished while this one planned is not rendered
        # twice (its done jobs move to skipped; ones that failed verification stay pending).
        self._finished = set() if cfg.force else run_dir.completed_job_ids()

    def render_all(self) -> None:
        """Every batch of the source, streamed to one runner, until the source is exhausted or a signal stops
        the run; the runner is stopped before this returns, with signals only recorded while it shuts down."""
        with catching_signals(self.interrupts) as interrupts:
            try:
                work = self._pending_batches()
                first = next(work, None)  # nothing to render at all: no runner, no Ray, no model
                if first is not None:
                    self._render(chain([first], work))
            except KeyboardInterrupt:
                interrupts.stop.set()
            finally:
                interrupts.begin_closing()
                if self._runner is not None:
                    self._runner.close()

    def _pending_batches(self) -> Iterator[tuple[RenderJob, ...]]:
        """Each source batch's jobs to render, once its skipped and adopted jobs are recorded. The runner
        pulls the next batch while the last jobs of this one still render."""
        for batch in self._source.batches:
            if self.interrupts.stop.is_set():
                return
            pending = self._prepare(batch)
            if pending:
                self._announce(pending)
                yield pending
        if self._progress is not None:
            self._progress.add_jobs(0, more=False)  # the last job to finish may now end a live display

    def _prepare(self, batch: Batch) -> tuple[RenderJob, ...]:
        """Record one batch's skipped jobs, adopt finished files; returns the jobs left to render."""
        pending, skipped = without_finished(
            batch.pending, batch.skipped, self._finished, self._source.rejected
        )
        self.stats.total += len(pending) + len(skipped)
        self.stats.skipped += len(skipped)
        if not pending:
            return ()  # nothing to render: no rows
        store = self._open_ledger()
        for job in skipped:
            store.append(job_row(self.ctx, job, JobStatus.SKIPPED, output_path=self._dir.video(job)))
        record_rejected(store, self.ctx, pending, self._source.rejected)
        if self._cfg.force:
            self._dir.discard_chunks(pending)
            return pending
        pending, adopted = self._dir.adopt_finished(store, self.ctx, pending, dict(self._source.rejected))
        self.stats.skipped += len(adopted)
        if not self._cfg.output.keep_chunks:
            self._dir.discard_chunks(adopted)  # their done rows are durable now
        return pending

    def _announce(self, pending: tuple[RenderJob, ...]) -> None:
        """A batch goes to the runner: progress counts it, its jobs start waiting (ledger `queue_s`)."""
        events, progress = self._reporting()
        progress.add_jobs(len(pending), more=True)
        events.jobs_ready(pending)

    def _reporting(self) -> tuple[LedgerEvents, Progress]:
        """The launch's event recorder and progress display, made with the first batch that renders."""
        if self._events is None or self._progress is None:
            self._progress = Progress(0, enabled=self._cfg.progress, more=True)
            # a chained job's resume state goes once its done row is durable (not before: a crash in between
            # would leave a job neither recorded done nor resumable)
            keep = self._cfg.output.keep_chunks
            tidy = None if keep else (lambda job: self._dir.discard_chunks((job,)))
            self._events = LedgerEvents(
                self._open_ledger(),
                self.ctx,
                self._progress,
                self.stats,
                after_done=tidy,
                on_fatal=self._halt,
            )
        return self._events, self._progress

    def _render(self, batches: Iterator[tuple[RenderJob, ...]]) -> None:
        events, progress = self._reporting()
        runner = self._runner = make_runner(self._cfg, self._worker, self._run, self.interrupts)
        try:
            runner.run(batches, events, self.interrupts.stop)
        finally:  # a live display ends before anything else is printed
            progress.close()

    def _halt(self, error: str) -> None:
        """A worker cannot load the model: stop dispatching (in-flight jobs are cancelled) and report once."""
        if self.fatal is None:
            self.fatal = error
        self.interrupts.stop.set()

    def stop(self, error: str) -> None:
        """Stop the run for a reason outside any job (the output dir's lease was lost), reported once."""
        self._halt(error)

    def _open_ledger(self) -> LedgerStore:
        """The run's journal and the live job table, opened for the first batch that renders."""
        if self._store is None:
            self._store = self._dir.open_ledger(self.ctx.run_id, self._cfg.ledger_refresh_s)
        return self._store

    def close(self) -> RunReport:
        """Close the journal, fold every journal into ledger.parquet, write the exact job table and the
        contact sheet (when this output dir has a ledger), and report."""
        self.stats.wall_s = time.monotonic() - self._started
        ledger_path, sheet = self._dir.close(self._store)
        return RunReport(
            self._dir.location.text,
            self.stats,
            ledger_path,
            interrupted=self.interrupts.stop.is_set() and self.fatal is None,
            contact_sheet=sheet,
            signal_exit_code=self.interrupts.exit_code,
            fatal=self.fatal,
        )


def worker_spec(cfg: AppConfig, project_root: Path) -> WorkerSpec:
    """What this launch's workers load, the models root settled here, on the driver: a Ray worker's
    environment and launch dir may not be the driver's (and a warm pool's key is computed from it)."""
    model = replace(cfg.model, root=str(model_root(cfg.model, project_root)))
    return WorkerSpec(model=model, project_root=str(project_root))


def make_runner(cfg: AppConfig, worker: WorkerSpec, run: RunSpec, interrupts: Interrupts) -> Runner:
    """The runner `engine.kind` names: warm Ray actors, or this process."""
    if cfg.engine.kind is EngineKind.ray:
        from ltx2_batch.runners.ray import RayRunner

        return RayRunner(cfg.engine, worker, run, verbose=cfg.verbose)
    from ltx2_batch.runners.local import LocalRunner
    from ltx2_batch.worker.spec import build_executor

    return LocalRunner(lambda: build_executor(worker, "local-0"), run, interruptible=interrupts.interruptible)


def _rebuild(run_dir: RunDir, shard: Shard | None) -> None:
    if not isinstance(run_dir, LocalRunDir):
        raise ConfigError(
            f"ledger_rebuild=true works on a local output dir; {run_dir.location.text} is on object storage "
            "(its done jobs are checked from their objects on every run: rerun without it)"
        )
    with hold_output_dir(run_dir.path, shard):
        report = rebuild_ledger(run_dir.path)
    aside = f"; the unreadable ledger was kept as {report.moved_aside}" if report.moved_aside else ""
    skipped = f"; {len(report.rejected)} sidecar(s) not trusted" if report.rejected else ""
    print(f"ledger rebuilt: {report.restored} done job(s) restored from sidecars{aside}{skipped}")
