"""What a published file is, as numbers both ends can compute: its size, its sha256, and the ETag S3 gives
it.

A worker reads each file once (`digest`) before it uploads it. The size and sha256 go into the job's
sidecar and its done row; the ETag the store should report is computed from the same bytes, the way S3
computes it: the MD5 of the object for a single PUT, or, for a multipart upload, the MD5 of the parts'
binary MD5s followed by `-<parts>` (parts of `part_bytes`, the last one shorter). Comparing it with the
ETag the store reports after the upload confirms the bytes without reading them back (objects encrypted
with SSE-KMS or SSE-C have other ETags: objects.py checks their size only).
Must not: touch the network or decide what is uploaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_MAX_SINGLE_PUT = 5 << 30  # S3's largest single PUT


@dataclass(frozen=True)
class FileDigest:
    """One file's size and checksums, from one read: what its records hold and what confirms its upload."""

    size: int
    sha256: str
    md5: str  # of the whole file
    part_md5s: tuple[bytes, ...]  # binary MD5 of each `part_bytes` block
    part_bytes: int

    @property
    def multipart(self) -> bool:
        """Whether an upload in `part_bytes` parts goes multipart (s3fs: from two parts' worth on)."""
        return self.size >= min(_MAX_SINGLE_PUT, 2 * self.part_bytes)

    @property
    def s3_etag(self) -> str:
        """The ETag S3 reports for these bytes uploaded this way (without its quotes)."""
        if not self.multipart:
            return self.md5
        combined = hashlib.md5(b"".join(self.part_md5s), usedforsecurity=False).hexdigest()
        return f"{combined}-{len(self.part_md5s)}"


def digest(path: Path, part_bytes: int) -> FileDigest:
    """One pass over `path`: size, sha256, MD5, and the MD5 of each `part_bytes` block."""
    sha, whole, parts, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), [], 0
    with Path(path).open("rb") as handle:
        while block := handle.read(part_bytes):
            sha.update(block)
            whole.update(block)
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
            size += len(block)
    return FileDigest(size, sha.hexdigest(), whole.hexdigest(), tuple(parts), part_bytes)


def file_record(path: Path) -> dict[str, object]:
    """{bytes, sha256} of a file: what its sidecar says about it."""
    sha, size = hashlib.sha256(), 0
    with Path(path).open("rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
            size += len(block)
    return {"bytes": size, "sha256": sha.hexdigest()}
