"""The dataset export's file I/O, through one fsspec filesystem per side: a local folder and a bucket URL
(`s3://bucket/ds`, or any fsspec URL) take the same calls.

Owns `FileRef` (one file on some filesystem), `DatasetStore` (the export's destination: listing, reading,
atomic writes, placing a file) and `sha256_of`. What "atomic" and "place" mean is the filesystem's:

- a write goes to a temporary local file first; on a local destination it is renamed into place (readers
  see the old file or the whole new one), on object storage it is uploaded in one PUT (an object appears
  whole or not at all; a large upload is multipart and becomes visible only when it completes);
- placing a file hard-links it where both sides are on one local file system (and `link` is on), copies it
  server-side where both are in the same object store (`fs.copy`: S3's CopyObject, no bytes through this
  host), uploads it from local disk to a bucket, and otherwise streams it through a temporary file.

Must not know what a sample, a shard or a ledger is (dataset.py and webdataset.py decide what goes where),
and must not write outside its root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRef:
    """One file: a filesystem and its path on it (fsspec's form: no protocol, no trailing slash)."""

    fs: Any  # fsspec.AbstractFileSystem (fsspec ships no type information)
    path: str

    @classmethod
    def of(cls, location: str | os.PathLike[str], endpoint_url: str | None = None) -> FileRef:
        """`location`'s filesystem and path; `endpoint_url` (output.endpoint_url) points an s3:// URL at an
        S3-compatible store, as the run's own objects do (storage/objects.py)."""
        text = os.fspath(location)
        options = {"endpoint_url": endpoint_url} if endpoint_url and text.startswith("s3://") else {}
        fs, path = fsspec.core.url_to_fs(text, **options)
        return cls(fs, path)

    @property
    def local(self) -> bool:
        """The file is on this machine's file system (renames and hard links work there)."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def url(self) -> str:
        """How a person or another tool names the file: the plain path locally, the full URL elsewhere."""
        return self.path if self.local else str(self.fs.unstrip_protocol(self.path))

    def stat(self) -> tuple[int, int]:
        """(size in bytes, modification time in ns): what tells a re-export that a file has changed."""
        if self.local:
            found = os.stat(self.path)  # noqa: PTH116 - nanosecond mtime, which fsspec's info rounds
            return found.st_size, found.st_mtime_ns
        info = self.fs.info(self.path)
        stamp = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or 0
        seconds = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
        return int(info["size"]), int(seconds * 1e9)

    def is_file(self) -> bool:
        """A file exists at the path."""
        return bool(self.fs.isfile(self.path))

    def same_fs(self, other: FileRef) -> bool:
        """Both files are on one filesystem: a copy between them passes no bytes through this host."""
        return bool(self.fs is other.fs or self.fs == other.fs)


def is_temporary(name: str) -> bool:
    """A file this module writes before renaming it into place (`.<name>.<random>.tmp`)."""
    return name.startswith(".") and name.endswith(".tmp")


def sha256_of(ref: FileRef) -> str:
    """The hex sha256 of the file's bytes, streamed: whether a placed clip still matches its source."""
    digest = hashlib.sha256()
    with ref.fs.open(ref.path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class DatasetStore:
    """The export's destination folder on a local disk or in a bucket; every path given is relative to it."""

    def __init__(self, location: str | os.PathLike[str], endpoint_url: str | None = None) -> None:
        root = FileRef.of(location, endpoint_url)
        self.fs, self.root = root.fs, root.path.rstrip("/")
        self.local = root.local
        if self.local:
            self.fs.makedirs(self.root, exist_ok=True)
            for name in self.listing(""):  # left by a killed export; sub-folders are swept by their owners
                if is_temporary(name):
                    self.remove(name)
        else:
            self.fs.invalidate_cache()  # another writer (or an earlier export) may have changed it

    def ref(self, rel: str) -> FileRef:
        """The file at `rel` under the destination."""
        return FileRef(self.fs, posixpath.join(self.root, rel))

    @property
    def url(self) -> str:
        """The destination as a person or a reader names it: a plain path, or the bucket URL."""
        return self.ref("").url.rstrip("/")

    def listing(self, folder: str) -> dict[str, int]:
        """File name -> size of every file directly in `folder` (one LIST per 1000 objects in a bucket)."""
        base = posixpath.join(self.root, folder)
        try:
            found = self.fs.ls(base, detail=True, refresh=True)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {
            posixpath.basename(entry["name"].rstrip("/")): int(entry["size"] or 0)
            for entry in found
            if entry["type"] == "file"
        }

    def read_bytes(self, rel: str) -> bytes | None:
        """`rel`'s bytes, or None when it does not exist."""
        try:
            return bytes(self.fs.cat_file(self.ref(rel).path))
        except FileNotFoundError:
            return None

    def remove(self, rel: str) -> None:
        """Remove `rel`; a file already gone is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.ref(rel).path)

    @contextlib.contextmanager
    def writing(self, rel: str) -> Iterator[IO[bytes]]:
        """Write `rel` atomically: nothing of it is visible until the block ends without an error."""
        target = self.ref(rel).path
        folder = posixpath.dirname(target) if self.local else tempfile.gettempdir()
        os.makedirs(folder, exist_ok=True)  # noqa: PTH103 - fsspec paths are strings
        # a unique name opened with "x": the umask's permissions, not mkstemp's 0600 (a dataset is shared)
        tmp = posixpath.join(folder, f".{posixpath.basename(target)}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "xb") as handle:  # noqa: PTH123 - fsspec paths are strings
                yield handle
            if self.local:
                os.replace(tmp, target)  # noqa: PTH105 - fsspec paths are strings
            else:
                self.fs.put_file(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # noqa: PTH108 - fsspec paths are strings

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write `data` to `rel` atomically (see `writing`)."""
        with self.writing(rel) as handle:
            handle.write(data)

    def holds_source(self, source: FileRef, rel: str) -> bool:
        """The file at `rel` is `source` itself (a hard link made by an earlier export)."""
        target = self.ref(rel)
        if not (self.local and source.local):
            return False
        try:
            return Path(source.path).samefile(target.path)
        except OSError:
            return False

    def place(self, source: FileRef, rel: str, link: bool) -> None:
        """Put `source`'s bytes at `rel`: a hard link, a server-side copy, an upload or a streamed copy."""
        target = self.ref(rel)
        if link and self.local and source.local and self._link(source, target):
            return
        if source.same_fs(target) and not self.local:
            self.fs.copy(source.path, target.path)  # server-side: the bytes stay in the store
        elif source.local and not self.local:
            self.fs.put_file(source.path, target.path)
        else:
            with self.writing(rel) as out, source.fs.open(source.path, "rb") as handle:
                shutil.copyfileobj(handle, out, _CHUNK)

    @staticmethod
    def _link(source: FileRef, target: FileRef) -> bool:
        """Hard-link under a temporary name, then rename; False where links cannot be made."""
        folder = posixpath.dirname(target.path)
        tmp = posixpath.join(folder, f".{posixpath.basename(target.path)}.link-{os.getpid()}.tmp")
        try:
            os.makedirs(folder, exist_ok=True)  # noqa: PTH103 - fsspec paths are strings
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # noqa: PTH108 - fsspec paths are strings
            os.link(source.path, tmp)
        except OSError:  # another file system, or links not allowed: the caller copies
            return False
        os.replace(tmp, target.path)  # noqa: PTH105 - fsspec paths are strings
        return True
