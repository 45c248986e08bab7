"""What one ledger row is: the frozen `LedgerRow`, its explicit Arrow schema and `SCHEMA_VERSION`.

Owns the row's shape and its conversions (row <-> JSON record, any older table -> the current schema) and
the builders that turn a `RenderJob` plus the run's context into a row. Must not touch files (store.py
does) and must not import torch or Ray: the ledger is read on machines that have neither.

Schema evolution: a reader keeps only the columns it knows and fills the ones it lacks with nulls, so
every Arrow column is nullable (the writer always sets run_id, seq, job_id, row_kind and status). Bump
SCHEMA_VERSION when a column is added; never change a column's type in place (add a new column).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from ltx2_batch.core.jobs import RenderJob, canonical_json
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.errors import LedgerError

SCHEMA_VERSION = 4  # 2: memory_policy; 3: model_family, model_version, recipe_*; 4: output_bytes ... upload_s


class RowKind(str, enum.Enum):
    """Whether a row records a whole job or one chunk of a chained job."""

    JOB = "job"  # the state of a whole job; completion is decided by these rows only
    CHUNK = "chunk"  # one chunk of a chained job (its latent path makes chained resume possible)


class JobStatus(str, enum.Enum):
    """A job row's status; the latest job row that is not `skipped` is the job's state."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    RETRIED = "retried"  # this attempt's worker died; the job was resubmitted (a later row follows)
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a run saw the job already done; records a decision, not a new state


@dataclass(frozen=True)
class LedgerRow:
    """One event in a job's life. Rows are only ever appended; the latest row of a job is its state.

    `seq` and `recorded_at` are stamped by the store on append (leave them None when building a row).
    Timestamps are timezone-aware UTC. Timings are seconds; None means "not measured", not zero.
    """

    run_id: str
    job_id: str
    row_kind: RowKind
    status: JobStatus
    seq: int | None = None  # position in its run's journal (0-based); (run_id, seq) is unique
    recorded_at: datetime | None = None
    schema_version: int = SCHEMA_VERSION
    chunk_index: int | None = None  # chunk rows only, 0-based
    chunk_count: int | None = None
    job_name: str | None = None
    job_index: int | None = None
    manifest_path: str | None = None
    manifest_sha256: str | None = None
    model_name: str | None = None
    model_fingerprint: str | None = None
    pipeline: str | None = None  # resolved kind, never "auto"
    mode: str | None = None  # video | chained | image
    attempt: int | None = None  # 1-based, counts system-failure resubmissions
    worker: str | None = None
    node: str | None = None
    device: str | None = None
    memory_policy: str | None = None  # the backend's choice for this job (resident, offload_text_encoder...)
    queue_s: float | None = None
    load_s: float | None = None
    render_s: float | None = None
    encode_s: float | None = None
    total_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_path: str | None = None
    thumbnail_path: str | None = None
    sidecar_path: str | None = None
    latent_path: str | None = None
    frames_written: int | None = None
    duration_s: float | None = None  # of the written clip
    error: str | None = None
    params_json: str | None = None  # the job's full canonical parameters: every parameter is queryable
    prompt: str | None = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    frame_rate: float | None = None  # final rows: the written file's (temporal upscale doubles the job's)
    seed: int | None = None
    tags_json: str | None = None
    model_family: str | None = None  # ltx2 | ltx23, read from the checkpoint
    model_version: str | None = None  # the checkpoint's `model_version` metadata
    recipe_steps: int | None = None  # stage-1 denoising steps that ran
    recipe_guidance: bool | None = None  # CFG/STG in stage 1
    recipe_stage_2_lora: bool | None = None  # the distilled LoRA on the stage-2 transformer
    # A run dir on object storage: what the store confirmed for the job's files (storage/publish.py)
    output_bytes: int | None = None
    output_sha256: str | None = None
    files_json: str | None = None  # {relative name: {bytes, sha256, etag}} of the video, thumbnail, sidecar
    upload_s: float | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "row_kind", RowKind(self.row_kind))
            object.__setattr__(self, "status", JobStatus(self.status))
        except ValueError as exc:
            raise LedgerError(f"ledger row for job {self.job_id!r}: bad row_kind or status: {exc}") from None
        if (self.row_kind is RowKind.CHUNK) != (self.chunk_index is not None):
            raise LedgerError(
                f"ledger row for job {self.job_id!r}: a chunk row needs chunk_index and a job row must "
                f"not have one (row_kind={self.row_kind.value}, chunk_index={self.chunk_index})"
            )
        for name in _TIMESTAMP_FIELDS:
            value = getattr(self, name)
            if value is not None:
                if value.tzinfo is None:
                    raise LedgerError(f"ledger row for job {self.job_id!r}: {name} must be timezone-aware")
                object.__setattr__(self, name, value.astimezone(timezone.utc))


_STR = pa.string()
_I32 = pa.int32()
_I64 = pa.int64()
_F64 = pa.float64()
_TS = pa.timestamp("us", tz="UTC")

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("run_id", _STR),
        pa.field("job_id", _STR),
        pa.field("row_kind", _STR),
        pa.field("status", _STR),
        pa.field("seq", _I64),
        pa.field("recorded_at", _TS),
        pa.field("schema_version", _I32),
        pa.field("chunk_index", _I32),
        pa.field("chunk_count", _I32),
        pa.field("job_name", _STR),
        pa.field("job_index", _I32),
        pa.field("manifest_path", _STR),
        pa.field("manifest_sha256", _STR),
        pa.field("model_name", _STR),
        pa.field("model_fingerprint", _STR),
        pa.field("pipeline", _STR),
        pa.field("mode", _STR),
        pa.field("attempt", _I32),
        pa.field("worker", _STR),
        pa.field("node", _STR),
        pa.field("device", _STR),
        pa.field("memory_policy", _STR),
        pa.field("queue_s", _F64),
        pa.field("load_s", _F64),
        pa.field("render_s", _F64),
        pa.field("encode_s", _F64),
        pa.field("total_s", _F64),
        pa.field("started_at", _TS),
        pa.field("finished_at", _TS),
        pa.field("output_path", _STR),
        pa.field("thumbnail_path", _STR),
        pa.field("sidecar_path", _STR),
        pa.field("latent_path", _STR),
        pa.field("frames_written", _I64),
        pa.field("duration_s", _F64),
        pa.field("error", _STR),
        pa.field("params_json", _STR),
        pa.field("prompt", _STR),
        pa.field("width", _I32),
        pa.field("height", _I32),
        pa.field("num_frames", _I32),
        pa.field("frame_rate", _F64),
        pa.field("seed", _I64),
        pa.field("tags_json", _STR),
        pa.field("model_family", _STR),
        pa.field("model_version", _STR),
        pa.field("recipe_steps", _I32),
        pa.field("recipe_guidance", pa.bool_()),
        pa.field("recipe_stage_2_lora", pa.bool_()),
        pa.field("output_bytes", _I64),
        pa.field("output_sha256", _STR),
        pa.field("files_json", _STR),
        pa.field("upload_s", _F64),
    ],
    metadata={"ltx2_batch.ledger.schema_version": str(SCHEMA_VERSION)},
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LedgerRow))
_TIMESTAMP_FIELDS = ("recorded_at", "started_at", "finished_at")


@dataclass(frozen=True)
class RunContext:
    """What every row of one run shares. Built once by the driver."""

    run_id: str
    model_name: str
    model_fingerprint: str
    manifest_path: str | None = None
    manifest_sha256: str | None = None

    def sidecar_fields(self) -> dict[str, str | None]:
        """What every sidecar of the run records about it (the same facts, sidecar key names)."""
        return {
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_fingerprint": self.model_fingerprint,
            "manifest": self.manifest_path,
            "manifest_sha256": self.manifest_sha256,
        }


def job_row(ctx: RunContext, job: RenderJob, status: JobStatus | str, **fields: Any) -> LedgerRow:
    """A job-level row: identity and parameters from `job`, outcome fields (timings, paths...) as keywords.

    An unknown keyword is a TypeError from `dataclasses.replace`, so a typo cannot silently drop a value.
    """
    return dataclasses.replace(_base_row(ctx, job, status, RowKind.JOB), **fields)


def outcome_row(
    ctx: RunContext,
    job: RenderJob,
    outcome: JobOutcome,
    *,
    attempt: int,
    started_at: datetime,
    finished_at: datetime,
    queue_s: float | None = None,
) -> LedgerRow:
    """The one mapping from a job attempt's outcome to its final ledger row (`queue_s`: the driver's
    measure of how long the job waited for a worker)."""
    return job_row(
        ctx,
        job,
        JobStatus(outcome.status.value),
        attempt=attempt,
        worker=outcome.worker,
        node=outcome.node,
        device=outcome.device,
        memory_policy=outcome.memory_policy or None,
        load_s=outcome.load_s,
        render_s=outcome.render_s,
        encode_s=outcome.encode_s,
        total_s=outcome.total_s,
        queue_s=queue_s,
        started_at=started_at,
        finished_at=finished_at,
        output_path=outcome.output_path,
        thumbnail_path=outcome.thumbnail_path,
        sidecar_path=outcome.sidecar_path,
        frames_written=outcome.frames_written,
        duration_s=outcome.duration_s,
        error=outcome.error,
        frame_rate=outcome.frame_rate if outcome.frame_rate is not None else float(job.frame_rate),
        model_family=outcome.model_family,
        model_version=outcome.model_version,
        recipe_steps=outcome.recipe_steps,
        recipe_guidance=outcome.recipe_guidance,
        recipe_stage_2_lora=outcome.recipe_stage_2_lora,
        output_bytes=outcome.output_bytes,
        output_sha256=outcome.output_sha256,
        files_json=outcome.files_json,
        upload_s=outcome.upload_s,
    )


def chunk_outcome_row(
    ctx: RunContext,
    job: RenderJob,
    chunk: ChunkOutcome,
    *,
    attempt: int,
    finished_at: datetime,
    worker: str | None = None,
) -> LedgerRow:
    """A chunk row of a chained job: its latent file is what makes the job resumable. A resumed chunk is
    `done` (its files are complete) with the resumption noted in `error`; `worker` is the one rendering the
    job (a chunk is rendered where its job is)."""
    base = _base_row(ctx, job, JobStatus.DONE, RowKind.CHUNK, chunk=(chunk.index, chunk.count))
    return dataclasses.replace(
        base,
        attempt=attempt,
        worker=worker,
        latent_path=chunk.latent_path,
        render_s=chunk.render_s,
        frames_written=chunk.frames,
        finished_at=finished_at,
        error="resumed from an earlier attempt" if chunk.status is OutcomeStatus.RESUMED else chunk.note,
    )


def _base_row(
    ctx: RunContext,
    job: RenderJob,
    status: JobStatus | str,
    kind: RowKind,
    chunk: tuple[int, int] | None = None,
) -> LedgerRow:
    """The identity and parameter columns of a row; `chunk` is (index, count) for a chunk row."""
    if not job.job_id:
        raise LedgerError(f"job {job.name!r} has no job_id: compute it (jobs.with_job_id) before logging")
    return LedgerRow(
        run_id=ctx.run_id,
        job_id=job.job_id,
        row_kind=kind,
        status=status,  # type: ignore[arg-type]  # coerced (and checked) in __post_init__
        job_name=job.name,
        job_index=job.index,
        manifest_path=ctx.manifest_path,
        manifest_sha256=ctx.manifest_sha256,
        model_name=ctx.model_name,
        model_fingerprint=ctx.model_fingerprint,
        pipeline=job.pipeline.value,
        mode=job.mode.value,
        params_json=canonical_json(job),
        prompt=job.prompt,
        width=job.width,
        height=job.height,
        num_frames=job.num_frames,
        frame_rate=float(job.frame_rate),
        seed=job.seed,
        tags_json=canonical_json(dict(job.tags)),
        chunk_index=chunk[0] if chunk else None,
        chunk_count=chunk[1] if chunk else None,
    )


def row_to_record(row: LedgerRow) -> dict[str, object]:
    """A JSON-ready dict (enums as values, timestamps as ISO 8601 with offset). Hot path of `append`.

    A non-finite float (a NaN timing) becomes null: strict JSON has no NaN and one such value would make
    the whole journal unreadable to Arrow's JSON reader.
    """
    record: dict[str, object] = {}
    for name in FIELD_NAMES:
        value = getattr(row, name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        record[name] = value
    return record


def conform(table: pa.Table, schema: pa.Schema = LEDGER_SCHEMA) -> pa.Table:
    """Any ledger table (older or newer schema) as `schema`: known columns cast, missing ones null.

    `schema` is LEDGER_SCHEMA or a projection of it; columns it does not name are dropped.
    """
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    try:
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise LedgerError(f"ledger table does not fit schema v{SCHEMA_VERSION}: {exc}") from None
