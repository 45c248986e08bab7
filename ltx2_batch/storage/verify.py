"""Checking that a job recorded done really is, before a resumed run skips it and before an export packs it.

Owns `VerifyMode`, `verify_files` (one job's files against its ledger record) and `ResumeCheck`, the
callable the scheduler's split uses in place of "the files exist". The cheap check (the default) reads no
pixels: the main file exists and its container is whole (an MP4's top-level boxes tile the file exactly and
include `moov`; a PNG ends in its IEND chunk), the sidecar parses, names this job and agrees with the
ledger's done row (run id, frames written). `verify=full` also decodes the file and counts its frames.
A 0-byte or truncated MP4, a sidecar that is not JSON or one from another run fails, and the job is
rendered again with the reason recorded. Must not write files or ledger rows (the driver records reasons).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ltx2_batch.config import VerifyMode
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.errors import MediaError
from ltx2_batch.media.sidecar import read_sidecar
from ltx2_batch.storage.layout import OutputLayout

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the 12 bytes every complete PNG ends with
_MAX_BOXES = 10_000  # top-level MP4 boxes walked before giving up (ours have four)
_BOX_HEADER = 8  # an MP4 box opens with its size (u32) and its type (4 bytes)
_LARGE_BOX_HEADER = 16  # ... followed by a u64 size when the u32 size is 1


# The `error` of a done row restored from a sidecar (by `ledger_rebuild`, or adopted: a job whose files a
# worker finished after its driver died): it names the run whose sidecar the row vouches for.
REBUILT = "rebuilt from its sidecar (written by run {})"
ADOPTED = "finished after its run stopped; adopted from its sidecar (written by run {})"
_VOUCHED = re.compile(r"from its sidecar \(written by run ([^()]*)\)$")


@dataclass(frozen=True)
class DoneRecord:
    """What the ledger's latest done row says about a job's files."""

    run_id: str
    frames_written: int | None = None
    error: str | None = None  # a rebuilt row names the run that wrote the sidecar it was rebuilt from

    @property
    def sidecar_run_id(self) -> str:
        """The run whose sidecar the done row vouches for: its own, or, for a rebuilt row, the original."""
        found = _VOUCHED.search(self.error or "")
        return found.group(1) if found else self.run_id


def _mp4_problem(path: Path, size: int) -> str | None:  # noqa: PLR0911 - returns the first problem the box walk finds
    """The top-level boxes must tile the file exactly (a cut file leaves the last box short), the first
    must be `ftyp` and one must be `moov` (without it no player can read the samples)."""
    kinds: list[bytes] = []
    offset = 0
    with path.open("rb") as handle:
        while offset < size and len(kinds) < _MAX_BOXES:
            handle.seek(offset)
            header = handle.read(_LARGE_BOX_HEADER)
            if len(header) < _BOX_HEADER:
                return f"is cut inside an MP4 box header at byte {offset:,} of {size:,}"
            box_size, kind = struct.unpack(">I4s", header[:_BOX_HEADER])
            if box_size == 1:
                if len(header) < _LARGE_BOX_HEADER:
                    return f"is cut inside an MP4 box header at byte {offset:,} of {size:,}"
                box_size = struct.unpack(">Q", header[_BOX_HEADER:_LARGE_BOX_HEADER])[0]
            elif box_size == 0:
                box_size = size - offset  # "to the end of the file"
            if box_size < _BOX_HEADER:
                return f"has a broken MP4 box at byte {offset:,} (size {box_size})"
            kinds.append(kind)
            offset += box_size
    if offset != size:
        return f"is truncated: its MP4 boxes need {offset:,} bytes, the file has {size:,}"
    if not kinds or kinds[0] != b"ftyp":
        return "does not start with an MP4 `ftyp` box"
    if b"moov" not in kinds:
        return "has no MP4 `moov` box (the encoder never finished it)"
    return None


def _png_problem(path: Path, size: int) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(len(_PNG_SIGNATURE))
        handle.seek(max(size - len(_PNG_END), 0))
        tail = handle.read(len(_PNG_END))
    if head != _PNG_SIGNATURE:
        return "is not a PNG"
    if tail != _PNG_END:
        return "is a truncated PNG (no IEND chunk at its end)"
    return None


def container_problem(path: Path) -> str | None:
    """Why the main file at `path` is not a whole MP4/PNG, or None. Reads a few bytes per box."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            return "is not a regular file"
        if size == 0:
            return "is empty (0 bytes)"
        if path.suffix == ".png":
            return _png_problem(path, size)
        return _mp4_problem(path, size)
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read: {exc}"


def _decode_problem(path: Path, frames: int | None) -> str | None:
    """verify=full: decode every frame (PyAV) or the whole PNG (Pillow) and compare the frame count."""
    if path.suffix == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            return f"does not decode: {exc}"
        return None
    from ltx2_batch.media.probe import probe

    try:
        info = probe(path)
    except MediaError as exc:
        return f"does not decode: {exc}"
    if frames is not None and info.frame_count != frames:
        return f"decodes to {info.frame_count} frames, the ledger says {frames} were written"
    return None


def verify_files(  # noqa: PLR0911 - each check returns the first reason the files cannot be trusted
    video: Path, sidecar: Path, job_id: str, record: DoneRecord | None, mode: VerifyMode
) -> str | None:
    """Why this done job's files cannot be trusted, or None. `record` is its ledger done row, if any."""
    problem = container_problem(video)
    if problem:
        return f"output {video.name} {problem}"
    try:
        meta = read_sidecar(sidecar)
    except MediaError as exc:
        return f"sidecar {sidecar.name}: {exc}"
    if meta.get("job_id") != job_id:
        return f"sidecar {sidecar.name} names job {str(meta.get('job_id'))[:40]!r}, not {job_id!r}"
    frames = meta.get("frames_written")
    if record is not None:
        if "run_id" in meta and meta["run_id"] != record.sidecar_run_id:
            return (
                f"sidecar {sidecar.name} was written by run {str(meta['run_id'])[:40]!r}, but the ledger "
                f"records the job done by run {record.sidecar_run_id!r}"
            )
        if record.frames_written is not None and frames != record.frames_written:
            return f"sidecar says {frames} frames written, the ledger {record.frames_written}"
    if mode is VerifyMode.full:
        problem = _decode_problem(video, frames if isinstance(frames, int) else None)
        if problem:
            return f"output {video.name} {problem}"
    return None


@dataclass
class ResumeCheck:
    """`outputs_exist` for the scheduler's split, with verification: called only for jobs the ledger
    records done; a job that fails is not skipped, and `rejected` keeps why (job id -> reason). The
    ledger's done rows are read on the first call, so a fresh output dir costs nothing."""

    layout: OutputLayout
    mode: VerifyMode = VerifyMode.cheap
    records: Mapping[str, DoneRecord] | None = None
    rejected: dict[str, str] = field(default_factory=dict)

    def __call__(self, job: RenderJob) -> bool:
        if self.records is None:
            self.records = done_records(self.layout.root)
        record = self.records.get(job.job_id)
        problem = verify_files(
            self.layout.video(job), self.layout.sidecar(job), job.job_id, record, self.mode
        )
        if problem:
            self.rejected[job.job_id] = problem
        return problem is None


def done_records(output_dir: Path) -> dict[str, DoneRecord]:
    """Job id -> its ledger done row's run id and frame count, for every job whose latest row is done."""
    from ltx2_batch.ledger.store import latest_rows

    if not os.path.isdir(output_dir):  # noqa: PTH112 - False, not OSError, for a name too long
        return {}
    table = latest_rows(output_dir, columns=("frames_written", "error"))
    out = {}
    for row in table.select(["job_id", "status", "run_id", "frames_written", "error"]).to_pylist():
        if row["status"] == "done":
            out[row["job_id"]] = DoneRecord(row["run_id"], row["frames_written"], row["error"])
    return out
