"""Where a dataset export reads and writes, whatever holds it: a `Folder` on a local disk or in a bucket,
and the `RunSource` it exports from (a run dir: its ledger, its files, their checks).

The export's layout (export/dataset.py) only ever asks a Folder: does a file exist and how big is it (with
a change token: mtime on a disk, the object's time in a bucket), read it, stream it, list a sub-folder,
remove a file, write a file whole (`write`: a local temporary renamed into place, or one PUT), and place a
file from another folder (`place`: a hard link or copy on one disk; a server-side copy within a store; an
upload or download across). So the same layout code writes to `/data/ds` and to `s3://bucket/ds`, and a
run dir in a bucket exports to either.

A RunSource reads the run's ledger (a bucket's through a snapshot of its journal parts, ledger/parts.py)
and checks each done job's files before it is exported: on a disk with storage/verify.py, in a bucket from
its objects (sizes and ETags recorded at upload, storage/bucket_check.py; `verify=full` downloads and
decodes). Must not decide the dataset's layout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from ltx2_batch.config import VerifyMode
from ltx2_batch.core.jobs import file_sha256
from ltx2_batch.ledger.parts import snapshot
from ltx2_batch.ledger.store import latest_rows
from ltx2_batch.storage.bucket_check import downloaded, list_outputs, objects_problem
from ltx2_batch.storage.location import is_url, scratch_root
from ltx2_batch.storage.objects import ObjectStore
from ltx2_batch.storage.verify import DoneRecord, Expected, verify_files


@dataclass(frozen=True)
class Stat:
    size: int
    token: int  # changes when the file does: mtime (ns) on a disk, the object's write time (ns) in a bucket


class Folder:
    """A folder on a disk (`store` None) or in a bucket."""

    def __init__(self, where: str | Path, endpoint_url: str | None = None) -> None:
        self.text = str(where).rstrip("/")
        self.store = ObjectStore(self.text, endpoint_url) if is_url(self.text) else None
        self.local = None if self.store else Path(self.text)

    def child(self, rel: str) -> Folder:
        folder = object.__new__(Folder)
        folder.text = f"{self.text}/{rel}"
        folder.store = self.store.child(rel) if self.store else None
        folder.local = self.local / rel if self.local else None
        return folder

    def locate(self, rel: str) -> str:
        """`rel` as users see it: a path or a URL."""
        return f"{self.text}/{rel}"

    def stat(self, rel: str) -> Stat | None:
        if self.local is not None:
            try:
                found = (self.local / rel).stat()
            except FileNotFoundError:
                return None
            return Stat(found.st_size, found.st_mtime_ns)
        info = self._store().stat(rel)
        if info is None:
            return None
        return Stat(info.size, int(info.modified.timestamp() * 1e9) if info.modified else 0)

    def read(self, rel: str) -> bytes | None:
        if self.local is not None:
            with contextlib.suppress(FileNotFoundError):
                return (self.local / rel).read_bytes()
            return None
        return self._store().read(rel)

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        if self.local is not None:
            with (self.local / rel).open("rb") as handle:
                yield handle
            return
        store = self._store()
        with store.fs.open(store.key(rel), "rb") as handle:
            yield handle

    def sha256(self, rel: str) -> str:
        if self.local is not None:
            return file_sha256(str(self.local / rel))
        with tempfile.TemporaryDirectory() as tmp:
            self._store().get_file(rel, Path(tmp) / "f")
            return file_sha256(str(Path(tmp) / "f"))

    def names(self, folder: str) -> list[str]:
        """File names directly in the sub-folder `folder` (none when it does not exist)."""
        if self.local is not None:
            where = self.local / folder
            return sorted(p.name for p in where.iterdir() if p.is_file()) if where.is_dir() else []
        return sorted(
            rel.split("/")[-1] for rel in self._store().listing(f"{folder}/") if rel.count("/") == 1
        )

    def remove(self, rel: str) -> None:
        if self.local is not None:
            (self.local / rel).unlink(missing_ok=True)
        else:
            self._store().remove([rel])

    def write(self, rel: str, produce: Callable[[Path], object]) -> None:
        """`produce` writes a local file; it lands at `rel` whole (renamed into place, or one upload)."""
        if self.local is not None:
            target = self.local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            produce(tmp)
            tmp.replace(target)
            return
        with tempfile.TemporaryDirectory() as folder:
            staged = Path(folder) / Path(rel).name
            produce(staged)
            store = self._store()
            store.fs.put_file(str(staged), store.key(rel))

    def place(self, source: Folder, source_rel: str, rel: str, link: bool) -> None:
        """Put `source`'s file at `rel`: linked or copied on one disk, copied server-side in one store."""
        if self.local is not None and source.local is not None:
            _link_or_copy(source.local / source_rel, self.local / rel, link)
        elif (
            self.store is not None
            and source.store is not None
            and self.store.fs.protocol == source.store.fs.protocol
        ):
            self.store.fs.copy(source.store.key(source_rel), self.store.key(rel))
        elif source.store is not None:
            self.write(rel, lambda tmp: source.store.fs.get_file(source.store.key(source_rel), str(tmp)))  # type: ignore[union-attr]
        else:
            self.write(rel, lambda tmp: shutil.copyfile(source.locate(source_rel), tmp))

    def _store(self) -> ObjectStore:
        if self.store is None:
            raise ValueError(f"{self.text} is a local folder")
        return self.store


def _link_or_copy(source: Path, target: Path, link: bool) -> None:
    """Hard-link (or copy) under a temporary name, then rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy requested")
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copyfile(source, tmp)
    tmp.replace(target)


class RunSource:
    """A run dir the export reads: its ledger's latest rows, its files (a Folder), their checks."""

    def __init__(
        self, where: str | Path, endpoint_url: str | None = None, scratch: str | None = None
    ) -> None:
        self.folder = Folder(where, endpoint_url)
        self._scratch = scratch_root(scratch) / "export"
        self._listing: dict[str, Any] | None = None

    def rel(self, located: str) -> str:
        """A path or URL the ledger recorded, relative to the run dir."""
        prefix = self.folder.text + "/"
        return (
            located[len(prefix) :]
            if located.startswith(prefix)
            else os.path.relpath(located, self.folder.text)
        )

    def latest_rows(self, columns: tuple[str, ...]) -> pa.Table:
        if self.folder.store is None:
            return latest_rows(Path(self.folder.text), columns=columns)
        self._scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ledger-", dir=self._scratch) as tmp:
            return latest_rows(snapshot(self.folder.store, Path(tmp)), columns=columns)

    def problem(self, row: dict[str, Any], mode: VerifyMode) -> str | None:
        """Why a done row's files cannot be exported, or None."""
        if not row["output_path"]:
            return "the done row names no output file"
        expected = Expected.from_params(row["job_id"], row["params_json"] or "")
        if expected is None:
            return "the done row holds no job parameters to check its file against"
        record = DoneRecord(row["run_id"], row["frames_written"], row["error"])
        video = self.rel(row["output_path"])
        sidecar = self.rel(row["sidecar_path"]) if row["sidecar_path"] else f"metadata/{row['job_id']}.json"
        if self.folder.store is None:
            root = Path(self.folder.text)
            return verify_files(root / video, root / sidecar, expected, record, mode)
        if self._listing is None:
            self._listing = list_outputs(self.folder.store)
        files = json.loads(row["files_json"]) if row.get("files_json") else {}
        problem = objects_problem(self._listing, (video, sidecar), files)
        if problem is None and mode is VerifyMode.full:
            with downloaded(self.folder.store, self._scratch, (video, sidecar)) as local:
                problem = verify_files(local / video, local / sidecar, expected, record, mode)
        return problem
