"""Checking that a job's files hold what the job asked for: before a resumed run skips a job recorded done,
before an export packs it, and when a worker finishes it.

Owns `Expected` (what a job's file must hold, from the job's own parameters: `RenderJob.output_frames` and
whether it has sound; never a count the worker wrote down itself), `verify_files` (one job's files against
that and its ledger record) and `ResumeCheck`, the callable the scheduler's split uses in place of "the files
exist". The cheap check (the default) decodes nothing: the file's MP4 boxes tile it and include `moov`, its
video track holds exactly the expected frames and its audio track lasts as long as the video (read from the
box headers and sample tables, media/mp4_boxes.py; a PNG ends in its IEND chunk); the sidecar parses, names
this job and agrees with the ledger's done row (run id). `verify=full` also decodes the file and counts its
frames. A 0-byte, truncated or short file, a sidecar that is not JSON or one from another run fails, and the
job is rendered again with the reason recorded. Must not write files or ledger rows (the driver records
reasons).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ltx2_batch.config import VerifyMode
from ltx2_batch.core.jobs import RenderJob, RenderMode
from ltx2_batch.errors import MediaError
from ltx2_batch.media.mp4_boxes import top_level_boxes, tracks
from ltx2_batch.media.sidecar import read_sidecar
from ltx2_batch.storage.layout import OutputLayout

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the 12 bytes every complete PNG ends with
_AAC_FRAME = 1024  # samples per AAC frame: a track's priming and padding stay within a few of them
_AUDIO_SLACK_FRAMES = 3


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


@dataclass(frozen=True)
class Expected:
    """What a job's file must hold, from the job's parameters (never from what a worker reported)."""

    job_id: str
    frames: int
    audio: bool

    @classmethod
    def of(cls, job: RenderJob) -> Expected:
        """What `job`'s file must hold: its output frames, and sound when it has audio and is not a still."""
        return cls(job.job_id, job.output_frames, job.audio and job.mode is not RenderMode.IMAGE)

    @classmethod
    def from_params(cls, job_id: str, params_json: str) -> Expected | None:
        """From a job's canonical parameters (a ledger row's `params_json`, a sidecar's `params`); None
        when they do not read as a job's."""
        try:
            params = json.loads(params_json)
            mode, frames = RenderMode(params["mode"]), int(params["num_frames"])
            temporal = bool((params.get("upscale") or {}).get("temporal"))
            audio = bool(params.get("audio", True))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if mode is RenderMode.IMAGE:
            return cls(job_id, 1, False)
        return cls(job_id, 2 * (frames - 1) + 1 if temporal else frames, audio)


def _mp4_problem(path: Path) -> str | None:
    """The top-level boxes must tile the file exactly (a cut file leaves the last box short), the first
    must be `ftyp` and one must be `moov` (without it no player can read the samples)."""
    try:
        kinds = [box.kind for box in top_level_boxes(path)]
    except MediaError as exc:
        return str(exc)
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
        return _mp4_problem(path)
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read: {exc}"


def tracks_problem(path: Path, expected: Expected) -> str | None:
    """An MP4's own sample tables against the job: the video track holds exactly the expected frames and,
    with sound, an audio track lasts as long as the video (within the AAC encoder's priming and padding)."""
    try:
        found = {track.kind: track for track in tracks(path)}
    except MediaError as exc:
        return str(exc)
    video = found.get("vide")
    if video is None:
        return "has no video track"
    if video.samples != expected.frames:
        return f"holds {video.samples} frames, the job asks for {expected.frames}"
    audio = found.get("soun")
    if expected.audio and audio is None:
        return "has no audio track, the job asks for sound"
    if audio is not None:
        slack = _AUDIO_SLACK_FRAMES * _AAC_FRAME / max(audio.timescale, 1)
        if abs(audio.duration_s - video.duration_s) > slack:
            return f"has {audio.duration_s:.2f} s of audio for {video.duration_s:.2f} s of video"
    return None


def _decode_problem(path: Path, frames: int) -> str | None:
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
    if info.frame_count != frames:
        return f"decodes to {info.frame_count} frames, the job asks for {frames}"
    return None


def verify_files(  # noqa: PLR0911 - each check returns the first reason the files cannot be trusted
    video: Path, sidecar: Path, expected: Expected, record: DoneRecord | None, mode: VerifyMode
) -> str | None:
    """Why this done job's files cannot be trusted, or None. `record` is its ledger done row, if any."""
    problem = container_problem(video)
    if problem is None and video.suffix != ".png":
        problem = tracks_problem(video, expected)
    if problem:
        return f"output {video.name} {problem}"
    try:
        meta = read_sidecar(sidecar)
    except MediaError as exc:
        return f"sidecar {sidecar.name}: {exc}"
    if meta.get("job_id") != expected.job_id:
        return f"sidecar {sidecar.name} names job {str(meta.get('job_id'))[:40]!r}, not {expected.job_id!r}"
    if record is not None and "run_id" in meta and meta["run_id"] != record.sidecar_run_id:
        return (
            f"sidecar {sidecar.name} was written by run {str(meta['run_id'])[:40]!r}, but the ledger "
            f"records the job done by run {record.sidecar_run_id!r}"
        )
    if meta.get("frames_written") != expected.frames:
        return f"sidecar says {meta.get('frames_written')} frames written, the job asks for {expected.frames}"
    if mode is VerifyMode.full:
        problem = _decode_problem(video, expected.frames)
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
            self.layout.video(job), self.layout.sidecar(job), Expected.of(job), record, self.mode
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
