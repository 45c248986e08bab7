"""A run dir as the driver uses it, wherever it lives: `RunDir`, with a local folder and a bucket behind it.

The session, the job source, `plan=true` and `status` ask a RunDir for everything that depends on where
the files are: the writer rule (a flock on a disk, a lease on a bucket), what is done (the ledger) and
whether its files still hold (ResumeCheck), where a job's file is recorded, the journal and live job table,
adopting files a worker finished after its driver died, dropping a chained job's resume state, and the
end-of-run ledger compaction, job table and contact sheet. `LocalRunDir` is the disk as it always was;
`BucketRunDir` (run/bucket.py) is object storage; run/planning.py's `open_run_dir` picks one.
Must not: render, or decide what a job's files are (workers and storage/ do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ltx2_batch.config import VerifyMode
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.shard import Shard
from ltx2_batch.export.contact_sheet import ContactSheet, write_contact_sheet
from ltx2_batch.ledger.live import LiveJobTable, write_job_table
from ltx2_batch.ledger.schema import RunContext
from ltx2_batch.ledger.store import LEDGER_DIR, LedgerStore, compact, completed_job_ids
from ltx2_batch.run.record import write_run_record
from ltx2_batch.run.resume import adopt_finished, discard_chunks
from ltx2_batch.run.status import status_text
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.location import Location
from ltx2_batch.storage.verify import ResumeCheck
from ltx2_batch.storage.writer_lock import hold_output_dir

Jobs = tuple[RenderJob, ...]


class DoneCheck(Protocol):
    """`outputs_exist` with verification, for the scheduler's split (storage/verify.py ResumeCheck)."""

    rejected: dict[str, str]

    def __call__(self, job: RenderJob) -> bool: ...


class Holding(Protocol):
    """What holding a run dir yields: told when the hold is lost (a bucket's lease taken over)."""

    on_lost: Callable[[str], None] | None
    lost: str | None


class RunDir(Protocol):
    """What the driver asks of a run dir, wherever it lives (module docstring): a local folder or a bucket."""

    location: Location

    def hold(self, shard: Shard | None, run_id: str) -> contextlib.AbstractContextManager[Holding | None]:
        """The writer rule: one unsharded writer, or one per shard of one count (ConfigError otherwise)."""
        ...

    def completed_job_ids(self) -> set[str]:
        """Implementers return the jobs whose latest job row is `done`: a resumed run does not render them."""
        ...

    def resume_check(self, mode: VerifyMode) -> DoneCheck:
        """Implementers return the check that a done job's files are still whole, verified as `mode` says."""
        ...

    def outputs_exist(self, job: RenderJob) -> bool:
        """Implementers say whether `job`'s video and sidecar are present (present, not verified)."""
        ...

    def video(self, job: RenderJob) -> str:
        """Where `job`'s file is recorded (a path, or an object's URL)."""
        ...

    def open_ledger(self, run_id: str, refresh_s: float) -> LedgerStore:
        """This run's journal, and the live job table kept fresh beside it."""
        ...

    def adopt_finished(
        self, store: LedgerStore, ctx: RunContext, pending: Jobs, rejected: dict[str, str]
    ) -> tuple[Jobs, Jobs]:
        """Implementers record done the pending jobs finished after their driver died: (pending, adopted)."""
        ...

    def discard_chunks(self, jobs: Iterable[RenderJob]) -> None:
        """Implementers remove the stored chunks (resume state) of the chained ones among `jobs`."""
        ...

    def close(self, store: LedgerStore | None) -> tuple[str | None, ContactSheet | None]:
        """Close the journal and live table, compact the ledger, write the job table and contact sheet;
        (ledger.parquet's path or URL, the sheet), both None when nothing was ever recorded here."""
        ...

    def status_text(self) -> str:
        """Implementers return what `ltx2-batch status` prints: counts per status and the latest jobs."""
        ...

    def forget_reads(self) -> None:
        """Drop what was read to answer the questions above (a bucket's snapshot of its ledger)."""
        ...

    def write_record(self, config_yaml: str, overrides: Sequence[str]) -> bool:
        """Implementers keep config and overrides beside the outputs; False while the run dir is not there."""
        ...


class LocalRunDir:
    """A run dir on a local (or mounted) file system: the behaviour the tool always had."""

    def __init__(self, path: Path) -> None:
        self.location = Location(str(path))
        self.path = path
        self.layout = OutputLayout(path)
        self._live: LiveJobTable | None = None

    @contextlib.contextmanager
    def hold(self, shard: Shard | None, run_id: str) -> Iterator[Holding | None]:  # noqa: ARG002 - RunDir
        """The output dir's writer lock (a flock) for the block; it yields None: a flock cannot be lost."""
        with hold_output_dir(self.path, shard):
            yield None

    def completed_job_ids(self) -> set[str]:
        """The done jobs, read from the ledger in place."""
        return completed_job_ids(self.path)

    def resume_check(self, mode: VerifyMode) -> DoneCheck:
        """A ResumeCheck over the output layout."""
        return ResumeCheck(self.layout, mode)

    def outputs_exist(self, job: RenderJob) -> bool:
        """The job's video and sidecar are on disk."""
        return self.layout.outputs_exist(job)

    def video(self, job: RenderJob) -> str:
        """The job's video path, as the ledger records it."""
        return str(self.layout.video(job))

    def open_ledger(self, run_id: str, refresh_s: float) -> LedgerStore:
        """This run's journal in the output dir, with a live job table refreshed beside it from now on."""
        store = LedgerStore(self.path, run_id)
        self._live = LiveJobTable(self.path, refresh_s)
        self._live.start()
        return store

    def adopt_finished(
        self, store: LedgerStore, ctx: RunContext, pending: Jobs, rejected: dict[str, str]
    ) -> tuple[Jobs, Jobs]:
        """Adopt the jobs whose sidecar says they finished (run/resume.py): (still pending, adopted)."""
        return adopt_finished(store, ctx, self.layout, pending, rejected)

    def discard_chunks(self, jobs: Iterable[RenderJob]) -> None:
        """Remove the chunk folders of the chained ones among `jobs`."""
        discard_chunks(self.layout, jobs)

    def close(self, store: LedgerStore | None) -> tuple[str | None, ContactSheet | None]:
        """Stop the live table, close the journal, compact the ledger, rewrite job table and contact sheet."""
        if self._live is not None:
            self._live.stop()
        if store is not None:
            store.close()
        if not (self.path / LEDGER_DIR).exists():  # journals stay readable if never reached
            return None, None
        ledger = compact(self.path)
        write_job_table(self.path)  # the one-row-per-job table, exact after the compaction
        return str(ledger), write_contact_sheet(self.path)  # every done job of the output dir

    def status_text(self) -> str:
        """The output dir's status, read in place."""
        return status_text(self.path)

    def forget_reads(self) -> None:
        """Nothing to drop: a disk is read in place."""

    def write_record(self, config_yaml: str, overrides: Sequence[str]) -> bool:
        """config.yaml and overrides.yaml in the output dir, if it exists."""
        return write_run_record(self.path, config_yaml, overrides)
