"""Checking a bucket run dir's jobs from the objects themselves: before a resumed run skips a job recorded
done, and before it adopts a job whose done row was lost.

- `BucketResumeCheck` (the scheduler's ResumeCheck for a bucket): one listing of the run dir's
  `generated/`, `thumbnails/` and `metadata/` (sizes and ETags of every object, a thousand per request) is
  compared with what each done row recorded when the upload was confirmed (`files_json`: bytes and ETag
  of the video, thumbnail and sidecar). The worker checked the file against its job before the upload
  (worker/job_files.py), so matching objects are those checked bytes. `verify=full` also downloads the
  video and sidecar and runs the disk's checks on them (storage/verify.py: sample tables, decoding).
- `adoptable` (a job with no done row but a sidecar object: its driver died, or its last journal part
  never went up): the sidecar and the video are downloaded and checked as on a disk (the file against the
  job's own parameters, the sidecar against the file's recorded size and sha256), and the objects against
  the sidecar. What passes gets a done row built from the sidecar, naming the objects.
Must not: write objects or ledger rows (the driver does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx2_batch.config import VerifyMode
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.ledger.rebuild import finished_meta, sidecar_row
from ltx2_batch.ledger.schema import LedgerRow
from ltx2_batch.storage.checksum import file_record
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.objects import ObjectInfo, ObjectStore
from ltx2_batch.storage.scratch_temp import scratch_folder
from ltx2_batch.storage.verify import ADOPTED, DoneRecord, Expected, verify_files

RELATIVE = OutputLayout(Path())  # a job's names relative to its run dir: generated/<id>.mp4 ...
_FOLDERS = ("generated/", "thumbnails/", "metadata/")


@dataclass(frozen=True)
class DoneObjects:
    """What a done row says about its job's objects: its run, and {name: {bytes, sha256, etag}}."""

    record: DoneRecord
    files: Mapping[str, Mapping[str, Any]]


def done_objects(rows: list[dict[str, Any]]) -> dict[str, DoneObjects]:
    """From the latest job rows (`status`, `run_id`, `frames_written`, `error`, `files_json`): done ones."""
    out = {}
    for row in rows:
        if row["status"] == "done":
            files = json.loads(row["files_json"]) if row.get("files_json") else {}
            record = DoneRecord(row["run_id"], row["frames_written"], row["error"])
            out[row["job_id"]] = DoneObjects(record, files)
    return out


def names(job: RenderJob) -> tuple[str, str, str]:
    """The job's video, thumbnail and sidecar, relative to the run dir."""
    return str(RELATIVE.video(job)), str(RELATIVE.thumbnail(job)), str(RELATIVE.sidecar(job))


def objects_problem(
    listing: Mapping[str, ObjectInfo], wanted: tuple[str, ...], files: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """Why the listed objects are not the ones recorded (missing, another size, another ETag), or None."""
    for rel in wanted:
        found = listing.get(rel)
        if found is None:
            return f"{rel} is missing from the bucket"
        recorded = files.get(rel, {})
        if recorded.get("bytes") is not None and found.size != recorded["bytes"]:
            return f"{rel} holds {found.size} bytes in the bucket, {recorded['bytes']} were uploaded"
        if recorded.get("etag") and found.etag and found.etag != recorded["etag"]:
            return f"{rel} has ETag {found.etag} in the bucket, {recorded['etag']} was uploaded"
        if found.size == 0:
            return f"{rel} is empty (0 bytes) in the bucket"
    return None


def list_outputs(store: ObjectStore) -> dict[str, ObjectInfo]:
    """The run dir's job files, one listing per folder."""
    listing: dict[str, ObjectInfo] = {}
    for folder in _FOLDERS:
        listing.update(store.listing(folder))
    return listing


@dataclass
class BucketResumeCheck:
    """ResumeCheck for a bucket run dir (see the module doc): called for jobs the ledger records done."""

    store: ObjectStore
    records: Callable[[], dict[str, DoneObjects]]
    scratch: Path
    mode: VerifyMode = VerifyMode.cheap
    rejected: dict[str, str] = field(default_factory=dict)
    _done: dict[str, DoneObjects] | None = None
    _listing: dict[str, ObjectInfo] | None = None

    def listing(self) -> dict[str, ObjectInfo]:
        """Every job object of the run dir with its size and ETag, listed on first use and then kept."""
        if self._listing is None:
            self._listing = list_outputs(self.store)
        return self._listing

    def __call__(self, job: RenderJob) -> bool:
        if self._done is None:
            self._done = self.records()
        done = self._done.get(job.job_id)
        video, thumbnail, sidecar = names(job)
        files = done.files if done else {}
        problem = objects_problem(
            self.listing(), (video, sidecar, thumbnail) if files else (video, sidecar), files
        )
        if problem is None and self.mode is VerifyMode.full:
            problem = self._full_problem(job, done.record if done else None)
        if problem:
            self.rejected[job.job_id] = problem
        return problem is None

    def _full_problem(self, job: RenderJob, record: DoneRecord | None) -> str | None:
        with downloaded(self.store, self.scratch, names(job)) as local:
            return verify_files(
                local / names(job)[0], local / names(job)[2], Expected.of(job), record, VerifyMode.full
            )


@contextlib.contextmanager
def downloaded(store: ObjectStore, scratch: Path, rels: tuple[str, ...]) -> Iterator[Path]:
    """These objects in a temporary folder of the run dir's shape (removed afterwards)."""
    with scratch_folder(scratch, "check") as local:
        for rel in rels:
            store.get_file(rel, local / rel)
        yield local


def adoptable(
    store: ObjectStore,
    scratch: Path,
    job: RenderJob,
    listing: Mapping[str, ObjectInfo],
    run_id: str,
) -> LedgerRow | None:
    """A done row for a job with no done row whose objects check out as finished (module doc), or None."""
    video, thumbnail, sidecar = names(job)
    if sidecar not in listing:
        return None
    with downloaded(store, scratch, (video, sidecar)) as local:
        meta = finished_meta(local, job.job_id, local / sidecar)
        if meta is None:
            return None
        files = meta.get("files")
        recorded: dict[str, Any] = files if isinstance(files, dict) else {}
        if recorded.get(video) != file_record(local / video):
            return None  # the sidecar does not vouch for these bytes
        row = sidecar_row(run_id, local, local / sidecar, meta, ADOPTED)
    uploaded = {
        rel: {**recorded.get(rel, {}), "etag": listing[rel].etag}
        for rel in (video, thumbnail)
        if rel in listing
    }
    uploaded[sidecar] = {"bytes": listing[sidecar].size, "etag": listing[sidecar].etag}
    if objects_problem(listing, tuple(uploaded), uploaded):
        return None
    return dataclasses.replace(
        row,
        job_index=job.index,
        output_path=store.url(video),
        thumbnail_path=store.url(thumbnail) if thumbnail in listing else None,
        sidecar_path=store.url(sidecar),
        output_bytes=int(recorded[video]["bytes"]),
        output_sha256=str(recorded[video]["sha256"]),
        files_json=json.dumps(uploaded, sort_keys=True),
    )
