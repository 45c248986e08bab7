"""A worker's side of object storage: render into this node's scratch folder, check there, then publish.

A run dir on a bucket is mirrored, per node, by a scratch folder of the same shape
(`<scratch>/runs/<run key>/generated/...`, location.py settles where). `JobFiles` writes a job's files
there exactly as on a disk (temporary names, the sidecar last, the file checked against the job before the
sidecar); the sidecar also records each file's size and sha256. `Publisher.publish` then uploads them in
the order that makes completion observable in the bucket too: the video, the thumbnail, the sidecar last,
each confirmed by the store (size, and the ETag of the same bytes: objects.py) before the next. Only a
confirmed job comes back `done`, carrying the objects' URLs and a record of each (bytes, sha256, ETag) for
its ledger row; a failed upload makes the attempt `failed`, never done. The job's scratch files go either
way: scratch only ever holds jobs in flight.

A chained job's resume state lives in the bucket, so any node can resume it: before the job renders, the
bucket's chunk files replace whatever this node's scratch has (`fetch_chunks`); each chunk stored in
scratch is uploaded before it is reported (`stored`: frames, latents, then the record, on the stitch thread
while the next chunk renders); a chunk discarded as damaged is deleted from the bucket too (`discarded`).
Must not: render, write the ledger, or remove chunk state from the bucket once a job is done (the driver
does, after its done row).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ltx2_batch.chaining.state import ChunkPaths
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.storage.checksum import digest
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.location import scratch_key, scratch_root
from ltx2_batch.storage.objects import ObjectStore

MB = 1 << 20


@dataclass(frozen=True)
class Publisher:
    """Uploads one run's jobs from this node's scratch copy of the run dir (`layout`) to `store`."""

    store: ObjectStore
    layout: OutputLayout
    part_bytes: int

    @classmethod
    def for_run(cls, url: str, endpoint_url: str | None, scratch: str | None, part_mb: int) -> Publisher:
        """The publisher of the run dir `url`, its scratch copy under this node's scratch root."""
        root = scratch_root(scratch) / "runs" / scratch_key(url)
        root.mkdir(parents=True, exist_ok=True)
        return cls(ObjectStore(url, endpoint_url), OutputLayout(root), part_mb * MB)

    def _rel(self, path: Path | str) -> str:
        return os.path.relpath(path, self.layout.root)

    def publish(self, job: RenderJob, outcome: JobOutcome) -> JobOutcome:
        """Upload a done job's files, the sidecar last, each confirmed; the outcome with their URLs and
        records, or `failed` naming the object that did not go up. Scratch is cleared either way."""
        if outcome.status is not OutcomeStatus.DONE:
            self.forget(job)
            return outcome
        started = time.perf_counter()
        files: dict[str, dict[str, object]] = {}
        try:
            for path in (self.layout.video(job), self.layout.thumbnail(job), self.layout.sidecar(job)):
                found = digest(path, self.part_bytes)
                info = self.store.put_file(path, self._rel(path), found)
                files[self._rel(path)] = {"bytes": found.size, "sha256": found.sha256, "etag": info.etag}
        except Exception as exc:  # StorageError names the object; anything else is this attempt's failure too
            return dataclasses.replace(
                outcome, status=OutcomeStatus.FAILED, error=f"{exc}; not recorded done (its render is lost)"
            )
        finally:
            self.forget(job)
        video = files[self._rel(self.layout.video(job))]
        return dataclasses.replace(
            outcome,
            output_path=self.store.url(self._rel(self.layout.video(job))),
            thumbnail_path=self.store.url(self._rel(self.layout.thumbnail(job))),
            sidecar_path=self.store.url(self._rel(self.layout.sidecar(job))),
            output_bytes=int(str(video["bytes"])),
            output_sha256=str(video["sha256"]),
            files_json=json.dumps(files, sort_keys=True),
            upload_s=time.perf_counter() - started,
        )

    def forget(self, job: RenderJob) -> None:
        """Remove the job's scratch files (its objects, and its chunks', are in the bucket)."""
        for path in (self.layout.video(job), self.layout.thumbnail(job), self.layout.sidecar(job)):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.layout.chunk_dir(job), ignore_errors=True)
        self.layout.conditioning(job).unlink(missing_ok=True)

    # ------------------------------------------------------------------ a chained job's resume state

    def fetch_chunks(self, job: RenderJob) -> int:
        """Replace this node's scratch chunk folder of `job` with the bucket's; the files fetched."""
        local = self.layout.chunk_dir(job)
        shutil.rmtree(local, ignore_errors=True)
        fetched = 0
        for rel in sorted(self.store.listing(self._rel(local))):
            fetched += self.store.get_file(rel, self.layout.root / rel)
        return fetched

    def stored(self, paths: ChunkPaths) -> None:
        """A chunk just stored in scratch goes up: frames, latents, then its record (last, as on disk)."""
        for path in paths.all():
            self.store.put_file(path, self._rel(path), digest(path, self.part_bytes))

    def discarded(self, job: RenderJob, first: int, count: int) -> None:
        """Chunks `first`..`count - 1` failed their check (or follow one that did): gone from the bucket."""
        rels = [self._rel(p) for i in range(first, count) for p in ChunkPaths.of(self.layout, job, i).all()]
        self.store.remove(rels)

    def chunk_outcome(self, chunk: ChunkOutcome) -> ChunkOutcome:
        """A chunk's report with its state's object URLs in place of scratch paths."""
        latent = self.store.url(self._rel(chunk.latent_path)) if chunk.latent_path else ""
        media = self.store.url(self._rel(chunk.media_path)) if chunk.media_path else ""
        return dataclasses.replace(chunk, latent_path=latent, media_path=media)

    def fetch_output(self, job_id: str) -> None:
        """A storyboard shot's predecessor, rendered on any node: its file into scratch, when it exists."""
        for suffix in (".mp4", ".png"):
            rel = f"generated/{job_id}{suffix}"
            if self.store.get_file(rel, self.layout.root / rel):
                return
