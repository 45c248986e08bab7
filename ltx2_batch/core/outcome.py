"""What a worker reports for one job attempt and for each chunk of a chained job: one typed shape each.

Workers build these; the driver maps them to ledger rows in one place (ledger/schema.py `outcome_row`,
`chunk_outcome_row`) and to progress lines. Pure: no torch, Ray or files.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class OutcomeStatus(str, Enum):
    """How an attempt (or a chunk) ended. Jobs: done, failed, cancelled, retried; chunks: done, resumed."""

    DONE = "done"  # files complete (a chunk: rendered in this attempt)
    FAILED = "failed"  # the job's own error; not retried
    CANCELLED = "cancelled"  # stopped by a signal or by the run stopping
    RETRIED = "retried"  # the worker died; the job is resubmitted and a later outcome follows
    RESUMED = "resumed"  # chunks only: loaded from an earlier attempt's files, not rendered again


@dataclass(frozen=True)
class ChunkOutcome:
    """One chunk of a chained job. Its resume state: `latent_path` (latents, kept audio) and `media_path` (its
    kept frames, lossless), with a record of their counts and checksums beside them (chaining/state.py);
    both "" for a last chunk whose state was not stored (the chunk files are not kept, and the job's file is
    written right after it). `note`: why stored state was discarded before this chunk rendered again."""

    index: int  # 0-based
    count: int
    status: OutcomeStatus  # DONE or RESUMED
    latent_path: str
    media_path: str
    render_s: float
    frames: int  # frames this chunk contributes to the stitched video
    prompt: str = ""
    seed: int = 0
    handoff_latent_frames: int = 0  # video latent frames taken from the previous chunk
    handoff_audio_frames: int = 0  # audio latent frames taken from the previous chunk
    resume_bytes: int = 0  # bytes of its resume state on disk
    note: str | None = None

    def as_dict(self, files_kept: bool = True) -> dict[str, Any]:
        """For the sidecar: the chunk's facts, and its files only while they exist (`files_kept`)."""
        fields = {**dataclasses.asdict(self), "status": self.status.value}
        if not files_kept:
            fields.pop("latent_path")
            fields.pop("media_path")
        return fields


@dataclass(frozen=True)
class JobOutcome:
    """One job attempt, as the worker saw it. Timings are seconds; paths are absolute (URLs for a run dir on
    object storage)."""

    job_id: str
    status: OutcomeStatus
    output_path: str | None = None
    thumbnail_path: str | None = None
    sidecar_path: str | None = None
    frames_written: int = 0
    duration_s: float = 0.0
    load_s: float = 0.0
    render_s: float = 0.0
    encode_s: float = 0.0
    total_s: float = 0.0
    error: str | None = None
    worker: str = ""
    node: str = ""
    device: str = ""
    memory_policy: str = ""  # what the backend's memory policy chose for this job (resident, offload...)
    phases: dict[str, float] = field(default_factory=dict)
    chunks: tuple[ChunkOutcome, ...] = ()
    frame_rate: float | None = None  # of the written file; None: nothing written
    model_family: str | None = None
    model_version: str | None = None
    recipe_steps: int | None = None
    recipe_guidance: bool | None = None
    recipe_stage_2_lora: bool | None = None
    # On object storage (storage/publish.py): the video's size and sha256, each published file's record
    # (relative name -> bytes, sha256, ETag) as JSON, and the seconds the uploads took
    output_bytes: int | None = None
    output_sha256: str | None = None
    files_json: str | None = None
    upload_s: float | None = None
    # the model itself cannot be loaded (a damaged checkpoint, a missing file): no later job can render
    # either, so the run stops once with this error instead of failing every job the same way
    fatal: bool = False

    @property
    def is_final(self) -> bool:
        """Every status but RETRIED ends the job's life in this run."""
        return self.status is not OutcomeStatus.RETRIED


@dataclass(frozen=True)
class WorkerIdentity:
    """Which worker, on which host, an outcome came from (recorded in the ledger)."""

    worker: str
    node: str

    @classmethod
    def here(cls, worker: str) -> WorkerIdentity:
        """`worker` on this host."""
        return cls(worker=worker, node=socket.gethostname())
