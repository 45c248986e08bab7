"""A run dir on object storage, as the driver uses it (the RunDir of run/rundir.py for a URL).

- The writer rule is a lease in the bucket (storage/lease.py), held with a heartbeat for the whole launch.
- The ledger is journal parts plus ledger.parquet (ledger/parts.py): the driver journals into a mirror
  folder on its own disk (`<scratch>/driver/<run key>/`, only touched while the lease is held), uploads its
  new rows every `ledger_refresh_s`, pulls other shards' rows, and keeps `jobs.parquet` in the bucket fresh.
- Reading (what is done, `status`, `plan=true`) uses a snapshot of the bucket's ledger in a temporary folder
  of the disk's shape, so every reader of a disk's ledger works unchanged; the snapshot taken before the
  lease is dropped once the lease is held (what is done is read again under it, as on a disk).
- Done jobs are checked from the objects (storage/bucket_check.py); jobs whose done row was lost (the last
  seconds before a crash) are adopted from their objects instead of being rendered again.
- At the end: the last rows go up, the ledger is compacted (this run's parts and those of runs whose lease
  lapsed), and jobs.parquet and the contact sheet (thumbnails fetched into the snapshot) are uploaded.
Must not: render, or write job files (workers publish them).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow.compute as pc
import yaml

from ltx2_batch.config import OutputConfig, VerifyMode
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.shard import Shard
from ltx2_batch.export.contact_sheet import PNG_NAME, ContactSheet, sheet_entries, write_contact_sheet
from ltx2_batch.ledger.live import JOBS_NAME, LiveJobTable, write_job_table
from ltx2_batch.ledger.parts import LedgerMirror, compact_bucket, part_names, snapshot
from ltx2_batch.ledger.schema import RunContext
from ltx2_batch.ledger.store import PARQUET_NAME, LedgerStore, completed_job_ids, latest_rows
from ltx2_batch.run.record import CONFIG_FILE, OVERRIDES_FILE
from ltx2_batch.run.rundir import DoneCheck, Holding, Jobs
from ltx2_batch.run.status import status_text
from ltx2_batch.storage.bucket_check import BucketResumeCheck, DoneObjects, adoptable, done_objects, names
from ltx2_batch.storage.lease import hold_bucket_dir, live_leases, live_run_ids
from ltx2_batch.storage.location import Location, scratch_key, scratch_root
from ltx2_batch.storage.objects import ObjectStore
from ltx2_batch.storage.scratch_temp import scratch_folder, scratch_temp, sweep_orphans

_log = logging.getLogger(__name__)


class BucketRunDir:
    """A run dir at a URL (see the module doc)."""

    def __init__(self, location: Location, output: OutputConfig) -> None:
        self.location = location
        self.store = ObjectStore(location.text, output.endpoint_url)
        self.store.check_reachable()  # a missing bucket or a wrong endpoint: refused before any work
        self._ttl = output.lease_ttl_s
        self._scratch = scratch_root(output.scratch) / "driver"
        sweep_orphans(self._scratch)  # the snapshots of launches on this host that were killed
        self._key = scratch_key(location.text)
        self.mirror_dir = self._scratch / self._key  # set per shard by `hold`: written only under its lease
        self._read: Path | None = None  # the snapshot readers share until the lease is taken
        self._check: BucketResumeCheck | None = None
        self._mirror: LedgerMirror | None = None
        self._run_id: str | None = None

    # ------------------------------------------------------------------ reading

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Path]:
        """A fresh local copy of the bucket's ledger (a disk's shape), removed afterwards."""
        with scratch_folder(self._scratch, "snapshot") as folder:
            yield snapshot(self.store, folder)

    def _reading(self) -> Path:
        if self._read is None:
            folder = scratch_temp(self._scratch, "read")
            try:
                self._read = snapshot(self.store, folder)
            except BaseException:  # a store that fails mid-snapshot (or Ctrl-C) leaves no folder behind
                shutil.rmtree(folder, ignore_errors=True)
                raise
        return self._read

    def forget_reads(self) -> None:
        """Delete the shared snapshot, so the next read takes a fresh one."""
        if self._read is not None:
            shutil.rmtree(self._read, ignore_errors=True)
            self._read = None

    def completed_job_ids(self) -> set[str]:
        """The done jobs, from a snapshot of the bucket's ledger."""
        return completed_job_ids(self._reading())

    def _done_objects(self) -> dict[str, DoneObjects]:
        columns = ("frames_written", "error", "files_json")
        rows = latest_rows(self._reading(), columns=columns)
        rows = rows.filter(pc.equal(rows["status"], "done"))
        return done_objects(rows.select(["job_id", "status", "run_id", *columns]).to_pylist())

    def resume_check(self, mode: VerifyMode) -> DoneCheck:
        """A check of done jobs against their objects (bucket_check.py), kept: adoption reuses its listing."""
        self._check = BucketResumeCheck(self.store, self._done_objects, self._scratch, mode)
        return self._check

    def outputs_exist(self, job: RenderJob) -> bool:
        """The job's video and sidecar objects are listed in the bucket."""
        listing = self._listing()
        video, _, sidecar = names(job)
        return video in listing and sidecar in listing

    def _listing(self) -> dict[str, object]:
        if self._check is None:
            self._check = BucketResumeCheck(self.store, self._done_objects, self._scratch)
        return dict(self._check.listing())

    def video(self, job: RenderJob) -> str:
        """The URL of the job's video object, as the ledger records it."""
        return self.store.url(names(job)[0])

    # ------------------------------------------------------------------ writing, under the lease

    @contextlib.contextmanager
    def hold(self, shard: Shard | None, run_id: str) -> Iterator[Holding | None]:
        """The bucket's writer lease for the whole block, heartbeat included; yields the lease, which tells
        when it is lost. What is done is read again under it."""
        try:
            with hold_bucket_dir(self.store, shard, run_id, self._ttl) as lease:
                self._run_id = run_id
                # shards of one launch may drive from one machine: each its own mirror, as its own lease
                tag = f"-shard-{shard.index}-of-{shard.count}" if shard else ""
                self.mirror_dir = self._scratch / f"{self._key}{tag}"
                self.forget_reads()  # what is done is read again under the lease
                yield lease
        finally:
            self.forget_reads()

    def open_ledger(self, run_id: str, refresh_s: float) -> LedgerStore:
        """This run's journal in the local mirror, uploaded as parts (and the job table) every `refresh_s`."""
        self._mirror = LedgerMirror(self.store, self.mirror_dir, run_id, refresh_s)
        self._mirror.open()
        store = LedgerStore(self.mirror_dir, run_id)
        self._mirror.start(LiveJobTable(self.mirror_dir, refresh_s))
        return store

    def adopt_finished(
        self, store: LedgerStore, ctx: RunContext, pending: Jobs, rejected: dict[str, str]
    ) -> tuple[Jobs, Jobs]:
        """Jobs whose objects were finished but whose done row never reached the bucket (module doc)."""
        listing = self._check.listing() if self._check else {}
        keep, adopted = [], []
        for job in pending:
            row = (
                None
                if job.job_id in rejected
                else adoptable(self.store, self._scratch, job, listing, ctx.run_id)
            )
            if row is None:
                keep.append(job)
                continue
            store.append(row)
            _log.warning(
                "adopted %s (%s): its objects were finished by an earlier launch", job.name, job.job_id
            )
            adopted.append(job)
        return tuple(keep), tuple(adopted)

    def discard_chunks(self, jobs: Iterable[RenderJob]) -> None:
        """Remove the chunk objects of the chained ones among `jobs`."""
        for job in jobs:
            if job.is_chained:
                self.store.remove_prefix(f"chunks/{job.job_id}/")

    def close(self, store: LedgerStore | None) -> tuple[str | None, ContactSheet | None]:
        """Upload the last rows, compact the bucket's ledger, upload jobs.parquet and the contact sheet;
        (None, None) when nothing was ever recorded in the bucket."""
        if store is not None:
            store.close()
        if self._mirror is not None:
            self._mirror.close()  # the last rows go up (StorageError when they cannot)
        if not part_names(self.store) and self.store.stat(PARQUET_NAME) is None:
            return None, None  # nothing was ever recorded here
        own, live = self._run_id, live_run_ids(self.store, self._ttl)
        ledger = compact_bucket(self.store, self._scratch, lambda run: run == own or run not in live)
        with self.snapshot() as snap:
            self.store.write(JOBS_NAME, write_job_table(snap).read_bytes())
            sheet = self._contact_sheet(snap)
        shutil.rmtree(self.mirror_dir, ignore_errors=True)  # every row is in the bucket now
        return ledger, sheet

    def _contact_sheet(self, snap: Path) -> ContactSheet:
        """Written in the snapshot (with the thumbnails it shows fetched there), then uploaded."""
        for entry in sheet_entries(snap, links_from=self.location.text)[:64]:
            if entry.thumbnail:
                self.store.get_file(entry.thumbnail, snap / entry.thumbnail)
        sheet = write_contact_sheet(snap, links_from=self.location.text)
        pages = [Path(page).name for page in sheet.html_pages]
        for name in [*pages, *([PNG_NAME] if sheet.png else [])]:
            self.store.write(name, (snap / name).read_bytes())
        stale = [
            rel
            for rel in self.store.listing("", "contact_sheet")
            if rel.endswith(".html") and rel not in pages
        ]
        self.store.remove(stale)
        uploaded = tuple(self.store.url(name) for name in pages)
        return ContactSheet(uploaded, self.store.url(PNG_NAME) if sheet.png else None, sheet.entries)

    # ------------------------------------------------------------------ status, the launch record

    def status_text(self) -> str:
        """The bucket's status from a snapshot, plus each live writer lease and when it expires."""
        with self.snapshot() as snap:
            text = status_text(snap, shown=self.location.text)
        writers = [
            f"  writing: {state.holder.describe() if state.holder else rel} "
            f"(lease until {state.expires:%H:%M:%S} UTC)"
            for rel, state in live_leases(self.store, self._ttl).items()
            if state.expires is not None
        ]
        return "\n".join([text, *writers])

    def write_record(self, config_yaml: str, overrides: Sequence[str]) -> bool:
        """config.yaml and overrides.yaml beside the outputs, once the run dir has any (as on a disk)."""
        if self.store.stat(PARQUET_NAME) is None and not part_names(self.store):
            return False
        self.store.write(CONFIG_FILE, config_yaml.encode())
        self.store.write(OVERRIDES_FILE, yaml.safe_dump(list(overrides), default_flow_style=False).encode())
        return True
