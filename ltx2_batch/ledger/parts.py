"""The run ledger on object storage, where nothing can be appended to or renamed: journal *parts*.

    <run dir>/ledger.parquet                          every compacted row (as on a disk)
    <run dir>/ledger/<run_id>/part-<n:08d>.jsonl       whole journal lines of one run, in order; immutable

- Writing (`LedgerMirror`): the driver writes its journal on its own disk, in a mirror folder of the disk's
  shape (store.py's LedgerStore, fsynced per row), and every `interval_s` uploads the lines written since
  the last part as the next part. So a driver killed at any moment loses at most the rows of the last
  interval; the jobs those rows finished are found again from their objects by the next run
  (storage/bucket.py adopts them). The same pass pulls the parts other launches (shards) uploaded into the
  mirror, refreshes `jobs.parquet` there (ledger/live.py) and uploads it.
- Reading (`snapshot`): a fresh local folder of the disk's shape, `ledger.parquet` plus one
  `ledger/journal-<run_id>.jsonl` per run (its parts concatenated), so every reader of a disk's ledger
  (resume, status, the job table, the contact sheet, the export) reads it unchanged. Parts are listed
  before ledger.parquet is read, as journals are on a disk: a part folded meanwhile has its rows in the
  Parquet file read after it, and a row read twice is kept once ((run_id, seq) is unique).
- Compaction (`compact_bucket`): ledger.parquet and the parts of every run that is no longer writing (this
  one at its close, runs whose lease lapsed: `foldable`) become a new ledger.parquet, written only if the
  one read is still there (If-Match on its ETag; If-None-Match when there was none) and retried when
  another launch compacted first; the folded parts are deleted only after that.
Must not: decide what is foldable (leases do) or render; imports no torch or Ray.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ltx2_batch.errors import StorageError
from ltx2_batch.ledger.live import JOBS_NAME, LiveJobTable
from ltx2_batch.ledger.store import LEDGER_DIR, PARQUET_NAME, compact, journal_path
from ltx2_batch.storage.objects import ObjectStore
from ltx2_batch.storage.scratch_temp import scratch_folder

_log = logging.getLogger(__name__)
_PART = "part-{:08d}.jsonl"
_ATTEMPTS = 5  # compactions that lost a race with another launch's
_BATCH = 256  # parts fetched at once


def part_names(store: ObjectStore) -> dict[str, list[str]]:
    """Run id -> its parts (relative names), in order."""
    runs: dict[str, list[str]] = {}
    for rel in store.listing(f"{LEDGER_DIR}/"):
        pieces = rel.split("/")
        if len(pieces) == 3 and pieces[2].startswith("part-") and pieces[2].endswith(".jsonl"):  # noqa: PLR2004 - ledger/<run>/<part>
            runs.setdefault(pieces[1], []).append(rel)
    return {run: sorted(names) for run, names in runs.items()}


def _append_parts(store: ObjectStore, names: list[str], journal: Path) -> list[str]:
    """Append these parts to a local journal, in order; the names read (a vanished one ends the run's)."""
    read: list[str] = []
    journal.parent.mkdir(parents=True, exist_ok=True)
    with journal.open("ab") as handle:
        for start in range(0, len(names), _BATCH):  # fetched concurrently: a long run has many parts
            batch = names[start : start + _BATCH]
            found = store.read_many(batch)
            for name in batch:
                if name not in found:  # folded by a compaction meanwhile: its rows are in ledger.parquet
                    return read
                handle.write(found[name])
                read.append(name)
    return read


def snapshot(store: ObjectStore, into: Path) -> Path:
    """A local copy of the bucket's ledger in a disk's shape (see the module doc); returns `into`."""
    for run, names in part_names(store).items():  # listed BEFORE ledger.parquet is read
        _append_parts(store, names, journal_path(into, run))
    store.get_file(PARQUET_NAME, into / PARQUET_NAME)
    return into


def compact_bucket(store: ObjectStore, scratch: Path, foldable: Callable[[str], bool]) -> str:
    """Fold ledger.parquet and the parts of the runs `foldable` admits; returns ledger.parquet's URL."""
    for _ in range(_ATTEMPTS):
        with scratch_folder(scratch, "compact") as tmp:
            folded = _compact_once(store, tmp, foldable)
        if folded is not None:
            store.remove(folded)  # only once the new ledger.parquet is in place
            return store.url(PARQUET_NAME)
    raise StorageError(f"could not compact {store.url(PARQUET_NAME)}: other launches kept rewriting it")


def _compact_once(store: ObjectStore, tmp: Path, foldable: Callable[[str], bool]) -> list[str] | None:
    """The folded parts, or None when another compaction wrote ledger.parquet first."""
    runs = {run: names for run, names in part_names(store).items() if foldable(run)}
    before = store.stat(PARQUET_NAME)
    if not runs and before is not None:
        return []
    local = tmp / PARQUET_NAME
    if before is not None:
        store.get_file(PARQUET_NAME, local)
        after = store.stat(PARQUET_NAME)
        if after is None or after.etag != before.etag:
            return None  # rewritten while we read it
    folded = []
    for run, names in runs.items():
        folded += _append_parts(store, names, journal_path(tmp, run))
    compact(tmp)
    data = local.read_bytes()
    if before is None:
        etag = store.create(PARQUET_NAME, data)
    else:
        etag = store.replace(PARQUET_NAME, data, before.etag or "")
    return folded if etag is not None else None


class LedgerMirror:
    """A driver's view of a bucket's ledger, kept in `local` (the disk's shape) while its run writes: its
    own journal goes up as parts, other launches' parts come down, jobs.parquet is refreshed and uploaded
    (see the module doc). The run's LedgerStore writes `journal_path(local, run_id)`."""

    def __init__(self, store: ObjectStore, local: Path, run_id: str, interval_s: float) -> None:
        self._store, self._local, self._run_id = store, local, run_id
        self._interval = max(float(interval_s), 0.05)
        self._journal = journal_path(local, run_id)
        self._offset = 0  # bytes of our journal already uploaded
        self._next = 0  # our next part's number
        self._seen: dict[str, list[str]] = {}  # other runs' parts already in the mirror
        self._parquet: str | None = None  # ETag of the ledger.parquet in the mirror
        self._live: LiveJobTable | None = None
        self._jobs_mtime = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """A fresh mirror of what the bucket holds now (anything an earlier launch left there goes)."""
        shutil.rmtree(self._local, ignore_errors=True)
        self._local.mkdir(parents=True)
        self._pull()

    def start(self, live: LiveJobTable) -> None:
        """Upload, pull and refresh `live` every interval from now on (its own thread is not started)."""
        self._live = live
        self._thread = threading.Thread(target=self._loop, name="ltx2-ledger-parts", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        """Our new rows go up every interval (one PUT: what bounds the rows a crash loses); the view (pull,
        job table) waits at least ten times as long as its last pass took, as ledger/live.py's does."""
        next_view = 0.0
        while not self._stop.wait(self._interval):
            try:
                with self._lock:
                    self.push()
                if time.monotonic() >= next_view:
                    started = time.monotonic()
                    self.refresh_view()
                    next_view = time.monotonic() + 10 * (time.monotonic() - started)
            except Exception:  # the next pass retries; the local journal keeps every row
                _log.warning("ledger on %s: a pass failed (retried)", self._store.root, exc_info=True)

    def sync(self) -> None:
        """A whole pass: our new lines up, other launches' parts down, jobs.parquet refreshed and uploaded."""
        with self._lock:
            self.push()
        self.refresh_view()

    def refresh_view(self) -> None:
        """Other launches' parts into the mirror, then jobs.parquet refreshed there and uploaded."""
        with self._lock:
            rebuilt = self._pull()
            if self._live is not None:
                if rebuilt:
                    self._live.invalidate()
                self._upload_jobs(self._live)

    def push(self) -> None:
        """Upload the whole lines written since the last part as the next part (none: nothing written)."""
        try:
            with self._journal.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        if end == 0:
            return
        self._store.write(f"{LEDGER_DIR}/{self._run_id}/{_PART.format(self._next)}", data[:end])
        self._offset += end
        self._next += 1

    def _pull(self) -> bool:
        """Other launches' new parts into the mirror; True when it had to be rebuilt (a compaction folded
        parts or rewrote ledger.parquet since the last pull)."""
        runs = {run: names for run, names in part_names(self._store).items() if run != self._run_id}
        parquet = self._store.stat(PARQUET_NAME)
        etag = parquet.etag if parquet else None
        vanished = any(not set(seen) <= set(runs.get(run, [])) for run, seen in self._seen.items())
        rebuild = vanished or etag != self._parquet
        if rebuild:
            for run in self._seen:
                journal_path(self._local, run).unlink(missing_ok=True)
            self._seen = {}
            if not self._store.get_file(PARQUET_NAME, self._local / PARQUET_NAME):
                (self._local / PARQUET_NAME).unlink(missing_ok=True)
            self._parquet = etag
        for run, names in runs.items():
            seen = self._seen.setdefault(run, [])
            seen += _append_parts(self._store, names[len(seen) :], journal_path(self._local, run))
        return rebuild

    def _upload_jobs(self, live: LiveJobTable) -> None:
        target = live.refresh()
        mtime = target.stat().st_mtime_ns
        if mtime != self._jobs_mtime:
            self._store.write(JOBS_NAME, target.read_bytes())
            self._jobs_mtime = mtime

    def close(self) -> None:
        """Stop the thread and upload the last lines (StorageError when the bucket cannot take them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            try:
                self.push()
            except Exception as exc:
                raise StorageError(
                    f"the last ledger rows could not be uploaded to {self._store.root} ({exc}); they are "
                    f"kept in {self._journal}"
                ) from exc
