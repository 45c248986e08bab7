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
import posixpath
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from ltx2_batch.config import VerifyMode
from ltx2_batch.export.files import FileRef
from ltx2_batch.ledger.store import LEDGER_DIR, PARQUET_NAME, latest_rows
from ltx2_batch.storage.verify import DoneRecord, Expected, verify_files


class RunSource(contextlib.AbstractContextManager["RunSource"]):
    """A run dir to export from; use it as a context manager (it may hold a temporary folder)."""

    def __init__(self, location: Path | str) -> None:
        self.root = FileRef.of(location)
        self._stack = contextlib.ExitStack()
        self._scratch: Path | None = None

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def join(self, *parts: str) -> FileRef:
        return FileRef(self.root.fs, posixpath.join(self.root.path, *parts))

    def ref(self, recorded: str) -> FileRef:
        """A path the ledger recorded: a URL on its own filesystem, a plain path on the run's."""
        return FileRef.of(recorded) if "://" in recorded else FileRef(self.root.fs, recorded)

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
        """Where the ledger reader can read this run's ledger: the run dir, or a local copy of its ledger."""
        if self.root.local:
            return Path(self.root.path)
        copy = self._scratch_dir() / "run"
        copy.mkdir()
        parquet, journals = self.join(PARQUET_NAME), self.join(LEDGER_DIR)
        if parquet.is_file():
            parquet.fs.get_file(parquet.path, str(copy / PARQUET_NAME))
        if journals.fs.isdir(journals.path):
            journals.fs.get(journals.path.rstrip("/") + "/", str(copy / LEDGER_DIR), recursive=True)
        return copy

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
