"""Where a run's files go, under one output dir per run name (docs/behaviour.md, "Output layout").

    <output_dir>/generated/<job_id>.mp4 (.png for one-frame jobs)
    <output_dir>/thumbnails/<job_id>.jpg
    <output_dir>/metadata/<job_id>.json
    <output_dir>/chunks/<job_id>/chunk_<i>.{mkv,safetensors,json}   chained jobs' resume state
    <output_dir>/ledger/ + ledger.parquet

The job id decides every path, never the clock: a rerun finds what an earlier run wrote. The run name
(`output.run_name`, else the manifest's stem) is one plain path component, so the whole tree stays under
`output.root`: `run_name_problem` says why a name is not one.
Pure path arithmetic; creating folders is the writer's business. A run dir in a bucket has the same
names below its URL (a worker's scratch copy is laid out by this class too: storage/publish.py).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ltx2_batch.core.jobs import RenderJob, RenderMode

# The folders a run writes below its output dir (each checked against symlinks that lead out of it).
RUN_FOLDERS = ("generated", "thumbnails", "metadata", "chunks", "ledger", "conditioning", "dataset")
MAX_NAME_CHARS = 200  # a run name is one folder name: well under the 255 bytes a file system allows


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot name an output dir under output.root, or None. A name is one path component:
    not empty, not `.` or `..`, no separator, no NUL or control character, not absolute."""
    if not name or not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}: the run's files would land in output.root itself or above it"
    if "/" in name or "\\" in name or Path(name).is_absolute():
        shown = name[:MAX_NAME_CHARS]
        return f"{shown!r} contains a path separator; a run name is one folder name under output.root"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        return f"{name[:MAX_NAME_CHARS]!r} contains control or bidi characters"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long; at most {MAX_NAME_CHARS}"
    return None


@dataclass(frozen=True)
class OutputLayout:
    """Where each of a job's files goes under a run dir (module docstring); paths only."""

    root: Path

    def video(self, job: RenderJob) -> Path:
        """The job's clip: an MP4, or a PNG for a one-frame job."""
        suffix = ".png" if job.mode is RenderMode.IMAGE else ".mp4"
        return self.root / "generated" / f"{job.job_id}{suffix}"

    def thumbnail(self, job: RenderJob) -> Path:
        """The job's JPEG thumbnail (what the contact sheet shows)."""
        return self.root / "thumbnails" / f"{job.job_id}.jpg"

    @property
    def sidecar_dir(self) -> Path:
        """The folder of the sidecars, one per finished job."""
        return self.root / "metadata"

    def sidecar(self, job: RenderJob) -> Path:
        """The job's sidecar JSON, written last: its presence marks the job's files complete."""
        return self.sidecar_dir / f"{job.job_id}.json"

    def chunk_dir(self, job: RenderJob) -> Path:
        """The folder of a chained job's resume state."""
        return self.root / "chunks" / job.job_id

    def chunk_latent(self, job: RenderJob, index: int) -> Path:
        """Chunk `index`'s latents (and kept audio samples), which the next chunk is conditioned on."""
        return self.chunk_dir(job) / f"chunk_{index:03d}.safetensors"

    def chunk_record(self, job: RenderJob, index: int) -> Path:
        """A stored chunk's counts and checksums, written last (chaining/state.py)."""
        return self.chunk_dir(job) / f"chunk_{index:03d}.json"

    def chunk_media(self, job: RenderJob, index: int) -> Path:
        """A chunk's kept frames, stored lossless (resume state: fed to the stitch encoder again)."""
        return self.chunk_dir(job) / f"chunk_{index:03d}.mkv"

    def chunk_last_frame(self, job: RenderJob, index: int) -> Path:
        """Chunk `index`'s last kept frame, the image condition of chunk index+1 (condition_on_last_frame)."""
        return self.chunk_dir(job) / f"chunk_{index:03d}_last.png"

    def previous_shot_outputs(self, job: RenderJob) -> tuple[Path, Path]:
        """Where the storyboard shot `job` follows (`job.after`, a job id) wrote its file: MP4, or PNG."""
        generated = self.root / "generated"
        return generated / f"{job.after}.mp4", generated / f"{job.after}.png"

    def conditioning(self, job: RenderJob) -> Path:
        """Derived conditioning images (a storyboard shot's previous last frame)."""
        return self.root / "conditioning" / f"{job.job_id}_previous_last.png"

    def outputs_exist(self, job: RenderJob) -> bool:
        """A job counts as done only if its main file and sidecar are both in place."""
        return self.video(job).is_file() and self.sidecar(job).is_file()
