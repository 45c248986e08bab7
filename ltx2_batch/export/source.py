"""The run dir an export reads, on local disk or behind a URL (`s3://bucket/run`): its done jobs, checked.

Owns `RunSource`: the ledger's done rows whose files pass `verify_files`, and the files they name as
`FileRef`s (a recorded path that is a URL is read through its own filesystem; a plain path on local disk).
The ledger's reader (ledger/store.py) and `verify_files` (storage/verify.py) read local paths, so for a run
dir that is not local the ledger (`ledger.parquet` and `ledger/`) is copied into a temporary folder first,
and each job's file and sidecar are copied there one at a time to be checked, then deleted: a remote run
costs one download of every clip per export (placing it in a bucket is then a server-side copy). Must not
write into the run dir, and must not decide what a sample looks like (dataset.py does).
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from ltx2_batch.config import VerifyMode
from ltx2_batch.export.files import FileRef
from ltx2_batch.ledger.parts import snapshot
from ltx2_batch.ledger.store import latest_rows
from ltx2_batch.storage.bucket_check import list_outputs, objects_problem
from ltx2_batch.storage.objects import ObjectInfo, ObjectStore
from ltx2_batch.storage.verify import DoneRecord, Expected, verify_files


class RunSource(contextlib.AbstractContextManager["RunSource"]):
    """A run dir to export from; use it as a context manager (it may hold a temporary folder)."""

    def __init__(self, location: Path | str, endpoint_url: str | None = None) -> None:
        self.root = FileRef.of(location, endpoint_url)
        self._endpoint_url = endpoint_url
        self._objects: ObjectStore | None = None  # a bucket run dir's, for its ledger parts and listing
        self._listing: dict[str, ObjectInfo] | None = None
        self._stack = contextlib.ExitStack()
        self._scratch: Path | None = None

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def join(self, *parts: str) -> FileRef:
        """The file at `parts` under the run dir, on its filesystem."""
        return FileRef(self.root.fs, posixpath.join(self.root.path, *parts))

    def ref(self, recorded: str) -> FileRef:
        """A path the ledger recorded: a URL on its own filesystem, a plain path on the run's."""
        return (
            FileRef.of(recorded, self._endpoint_url) if "://" in recorded else FileRef(self.root.fs, recorded)
        )

    def done_rows(
        self, columns: tuple[str, ...], mode: VerifyMode, rejected: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """Every job whose latest ledger row is done and whose files pass verification (others are added
        to `rejected` with the reason), as ledger rows with `columns`."""
        table = latest_rows(self._ledger_dir(), columns=columns)
        table = table.filter(pc.equal(table["status"], "done"))
        return [row for row in table.to_pylist() if self._verified(row, mode, rejected)]

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(
                self._stack.enter_context(tempfile.TemporaryDirectory(prefix="ltx2-export-"))
            )
        return self._scratch

    def _ledger_dir(self) -> Path:
        """Where the ledger reader can read this run's ledger: the run dir, or a local snapshot of a bucket's
        (ledger.parquet and every run's journal parts, ledger/parts.py: a killed run's rows included)."""
        if self.root.local:
            return Path(self.root.path)
        copy = self._scratch_dir() / "run"
        copy.mkdir()
        return snapshot(self._store(), copy)

    def _store(self) -> ObjectStore:
        if self._objects is None:
            self._objects = ObjectStore(self.root.url, self._endpoint_url)
        return self._objects

    def _objects_problem(self, row: dict[str, Any]) -> str | None:
        """A bucket job's objects against the sizes and ETags its done row recorded at upload (the worker
        checked the files against the job before it uploaded them: storage/bucket_check.py)."""
        if self._listing is None:
            self._listing = list_outputs(self._store())
        files = json.loads(row["files_json"])
        return objects_problem(self._listing, tuple(files), files)

    def _local(self, ref: FileRef, name: str) -> Path:
        """`ref` as a local file: itself, or a copy in the scratch folder (`name` must be unique per job)."""
        if ref.local:
            return Path(ref.path)
        copy = self._scratch_dir() / name
        try:
            ref.fs.get_file(ref.path, str(copy))
        except FileNotFoundError:
            copy.unlink(missing_ok=True)  # verify_files reports it missing
        return copy

    def _verified(self, row: dict[str, Any], mode: VerifyMode, rejected: list[tuple[str, str]]) -> bool:
        job_id = row["job_id"]
        if not row["output_path"]:
            rejected.append((job_id, "the done row names no output file"))
            return False
        expected = Expected.from_params(job_id, row["params_json"] or "")
        if expected is None:
            rejected.append((job_id, "the done row holds no job parameters to check its file against"))
            return False
        if not self.root.local and mode is VerifyMode.cheap and row.get("files_json"):
            problem = self._objects_problem(row)  # one listing, no download: the uploaded objects recorded
            if problem:
                rejected.append((job_id, problem))
            return problem is None
        clip = self.ref(row["output_path"])
        sidecar = (
            self.ref(row["sidecar_path"]) if row["sidecar_path"] else self.join("metadata", f"{job_id}.json")
        )
        suffix = posixpath.splitext(clip.path)[1]
        local_clip, local_sidecar = (
            self._local(clip, f"{job_id}{suffix}"),
            self._local(sidecar, f"{job_id}.json"),
        )
        try:
            record = DoneRecord(row["run_id"], row["frames_written"], row["error"])
            problem = verify_files(local_clip, local_sidecar, expected, record, mode)
        finally:
            for path, ref in ((local_clip, clip), (local_sidecar, sidecar)):
                if not ref.local:
                    path.unlink(missing_ok=True)
        if problem:
            rejected.append((job_id, problem))
        return problem is None
