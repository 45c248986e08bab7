"""The run ledger: append journal, crash safety (torn lines), resume rule, compaction, readers.

Real files, real pyarrow/pandas/DuckDB; no mocks. A writer killed with SIGKILL mid-append is
tests/integration/test_ledger_crash.py (it needs a process to kill).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, with_job_id
from ltx2_batch.core.outcome import ChunkOutcome, JobOutcome, OutcomeStatus
from ltx2_batch.errors import LedgerError
from ltx2_batch.ledger.schema import (
    FIELD_NAMES,
    LEDGER_SCHEMA,
    SCHEMA_VERSION,
    JobStatus,
    LedgerRow,
    RowKind,
    RunContext,
    chunk_outcome_row,
    job_row,
    outcome_row,
)
from ltx2_batch.ledger.store import (
    LedgerStore,
    compact,
    completed_job_ids,
    journal_path,
    latest_job_rows,
    latest_rows,
    new_run_id,
    parquet_path,
    read_rows,
    read_rows_many,
)

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=timezone.utc)


def make_job(i: int, mode: RenderMode = RenderMode.VIDEO) -> RenderJob:
    job = RenderJob(
        name=f"job{i}",
        prompt=f"a fox, take {i}",
        width=64,
        height=96,
        num_frames=9 if mode is RenderMode.VIDEO else 300,
        frame_rate=24.0,
        seed=100 + i,
        pipeline=PipelineKind.TI2VID,
        mode=mode,
        tags=(("shot", f"s{i}"),),
        index=i,
    )
    return with_job_id(job, "fp-tiny")


def ctx_for(run_id: str) -> RunContext:
    return RunContext(run_id=run_id, model_name="tiny", model_fingerprint="fp-tiny", manifest_path="/m.yaml")


def log_statuses(output_dir: Path, run_id: str, events: list[tuple[RenderJob, JobStatus]]) -> None:
    ctx = ctx_for(run_id)
    with LedgerStore(output_dir, run_id, fsync=False) as store:
        for job, status in events:
            store.append(job_row(ctx, job, status))


# --- schema -------------------------------------------------------------------------------------------


def test_dataclass_and_arrow_schema_list_the_same_columns_in_order() -> None:
    assert list(FIELD_NAMES) == LEDGER_SCHEMA.names
    assert LEDGER_SCHEMA.metadata[b"ltx2_batch.ledger.schema_version"] == str(SCHEMA_VERSION).encode()


def test_job_row_carries_the_jobs_parameters() -> None:
    job = make_job(3)
    row = job_row(ctx_for("r1"), job, "done", output_path="/o/x.mp4", render_s=1.5)
    assert (row.job_id, row.row_kind, row.status) == (job.job_id, RowKind.JOB, JobStatus.DONE)
    assert (row.width, row.height, row.num_frames, row.seed, row.prompt) == (64, 96, 9, 103, job.prompt)
    assert (row.pipeline, row.mode, row.job_index, row.model_fingerprint) == ("ti2vid", "video", 3, "fp-tiny")
    assert json.loads(row.params_json)["seed"] == 103
    assert json.loads(row.tags_json) == {"shot": "s3"}
    assert (row.output_path, row.render_s) == ("/o/x.mp4", 1.5)


def test_invalid_rows_are_rejected() -> None:
    ctx, job = ctx_for("r1"), make_job(0)
    with pytest.raises(LedgerError, match="status"):
        job_row(ctx, job, "finished")
    with pytest.raises(LedgerError, match="chunk_index"):
        LedgerRow(run_id="r1", job_id="j", row_kind=RowKind.CHUNK, status=JobStatus.DONE)
    with pytest.raises(LedgerError, match="chunk_index"):
        job_row(ctx, job, "done", chunk_index=0)
    with pytest.raises(LedgerError, match="timezone"):
        job_row(ctx, job, "done", started_at=datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(TypeError):
        job_row(ctx, job, "done", rendr_s=1.0)  # a typo must not vanish silently
    with pytest.raises(LedgerError, match="job_id"):
        job_row(ctx, dataclasses.replace(job, job_id=""), "done")


# --- append and read ----------------------------------------------------------------------------------


def test_append_then_read_returns_every_field(tmp_path: Path) -> None:
    run_id = new_run_id()
    ctx, job = ctx_for(run_id), make_job(1, RenderMode.CHAINED)
    written = []
    with LedgerStore(tmp_path, run_id) as store:
        written.append(store.append(job_row(ctx, job, JobStatus.RUNNING, attempt=1, started_at=T0)))
        written.append(
            store.append(chunk_outcome_row(ctx, job, _chunk(0, 3, render_s=2.0), attempt=1, finished_at=T0))
        )
        done = job_row(
            ctx, job, "done", attempt=1, worker="w0", node="n0", device="cpu", queue_s=0.1, load_s=0.2,
            render_s=3.0, encode_s=0.4, total_s=3.7, started_at=T0,
            finished_at=T0 + timedelta(seconds=3.7), output_path="/o.mp4", thumbnail_path="/t.jpg",
            sidecar_path="/m.json", frames_written=300, duration_s=12.5, error=None,
        )  # fmt: skip
        written.append(store.append(done))
    assert [row.seq for row in written] == [0, 1, 2]
    assert all(row.recorded_at is not None for row in written)
    table = read_rows(tmp_path)
    assert table.schema.equals(LEDGER_SCHEMA)
    assert [row_from_record(record) for record in table.to_pylist()] == written


def row_from_record(record: Mapping[str, object]) -> LedgerRow:
    """A row read back (`table.to_pylist()`) as the LedgerRow it was written from (the round trip checked)."""
    known = {name: record[name] for name in FIELD_NAMES if name in record}
    for name in ("started_at", "finished_at", "recorded_at"):
        if isinstance(known.get(name), str):
            known[name] = datetime.fromisoformat(str(known[name]))
    try:
        return LedgerRow(**known)  # type: ignore[arg-type]  # values checked in __post_init__
    except TypeError as exc:  # a required identity field is missing
        raise LedgerError(f"not a ledger row: {exc}") from None


def test_append_only_grows_the_journal_never_rewrites_it(tmp_path: Path) -> None:
    run_id = "r1"
    ctx = ctx_for(run_id)
    with LedgerStore(tmp_path, run_id, fsync=False) as store:
        path = journal_path(tmp_path, run_id)
        inode, before = path.stat().st_ino, b""
        for i in range(50):
            store.append(job_row(ctx, make_job(i), "done"))
            after = path.read_bytes()
            assert path.stat().st_ino == inode
            assert after.startswith(before)  # earlier bytes untouched
            assert after.count(b"\n") == before.count(b"\n") + 1
            assert after.endswith(b"\n")
            before = after


def test_nan_timing_is_stored_as_null(tmp_path: Path) -> None:
    log_statuses(tmp_path, "r1", [])
    with LedgerStore(tmp_path, "r2") as store:
        store.append(job_row(ctx_for("r2"), make_job(0), "done", render_s=float("nan")))
    assert read_rows(tmp_path)["render_s"].to_pylist() == [None]


def test_a_run_id_cannot_be_reused_or_mixed(tmp_path: Path) -> None:
    log_statuses(tmp_path, "r1", [(make_job(0), JobStatus.DONE)])
    with pytest.raises(LedgerError, match="already has a journal"):
        LedgerStore(tmp_path, "r1")
    with pytest.raises(LedgerError, match="names a file"):
        LedgerStore(tmp_path, "../escape")
    with LedgerStore(tmp_path, "r2") as store, pytest.raises(LedgerError, match="run 'r3'"):
        store.append(job_row(ctx_for("r3"), make_job(0), "done"))
    store = LedgerStore(tmp_path, "r4")
    store.close()
    store.close()
    with pytest.raises(LedgerError, match="closed"):
        store.append(job_row(ctx_for("r4"), make_job(0), "done"))


def test_new_run_ids_sort_by_creation_and_are_unique() -> None:
    ids = [new_run_id() for _ in range(200)]
    assert len(set(ids)) == 200
    stamps = [run_id.split("-")[0] for run_id in ids]
    assert stamps == sorted(stamps)


# --- crash safety -------------------------------------------------------------------------------------


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log_statuses(tmp_path, "r1", [(make_job(i), JobStatus.DONE) for i in range(5)])
    path = journal_path(tmp_path, "r1")
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 40])  # cut inside the 5th line
    with caplog.at_level(logging.WARNING, logger="ltx2_batch.ledger.store"):
        table = read_rows(tmp_path)
    assert table["seq"].to_pylist() == [0, 1, 2, 3]
    assert "torn last line" in caplog.text
    assert completed_job_ids(tmp_path) == {make_job(i).job_id for i in range(4)}
    assert pq.read_table(compact(tmp_path)).num_rows == 4


def test_unreadable_middle_line_is_skipped_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_statuses(tmp_path, "r1", [(make_job(i), JobStatus.DONE) for i in range(3)])
    path = journal_path(tmp_path, "r1")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"\x00\x00garbage\n" + b"".join(lines[1:]))
    with caplog.at_level(logging.WARNING, logger="ltx2_batch.ledger.store"):
        assert read_rows(tmp_path)["seq"].to_pylist() == [0, 1, 2]
    assert "unreadable line 2" in caplog.text


# --- resume rule --------------------------------------------------------------------------------------

D, F, R, S, C = JobStatus.DONE, JobStatus.FAILED, JobStatus.RUNNING, JobStatus.SKIPPED, JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("history", "complete"),
    [
        ([[D]], True),
        ([[R, D]], True),
        ([[D], [F]], False),  # a later failed re-attempt (force) wins: render again
        ([[F], [R, D]], True),
        ([[D], [R]], False),  # the later run crashed mid-render
        ([[D], [S], [S]], True),  # skip rows record a decision, not a state
        ([[S]], False),
        ([[D], [C]], False),
        ([[R, F, R, D]], True),
    ],
)
def test_a_job_is_complete_iff_its_latest_non_skip_job_row_is_done(
    tmp_path: Path, history: list[list[JobStatus]], complete: bool
) -> None:
    job, other = make_job(0), make_job(1)
    for number, statuses in enumerate(history):
        log_statuses(tmp_path, f"run{number}", [(job, status) for status in statuses] + [(other, D)])
    assert completed_job_ids(tmp_path) == ({job.job_id} if complete else set()) | {other.job_id}
    compact(tmp_path)  # same answer from the parquet as from the journals
    assert completed_job_ids(tmp_path) == ({job.job_id} if complete else set()) | {other.job_id}


def _chunk(
    index: int, count: int, status: OutcomeStatus = OutcomeStatus.DONE, render_s: float = 0.5
) -> ChunkOutcome:
    return ChunkOutcome(index, count, status, f"/c/{index}.safetensors", f"/c/{index}.npz", render_s, 97)


def test_chunk_rows_never_complete_a_job_and_note_a_resumed_chunk(tmp_path: Path) -> None:
    job = make_job(7, RenderMode.CHAINED)
    ctx = ctx_for("run1")
    with LedgerStore(tmp_path, "run1") as store:
        store.append(job_row(ctx, job, "running"))
        store.append(
            chunk_outcome_row(ctx, job, _chunk(0, 3, OutcomeStatus.RESUMED), attempt=1, finished_at=T0)
        )
        row = store.append(chunk_outcome_row(ctx, job, _chunk(1, 3), attempt=1, finished_at=T0))
    assert (row.row_kind, row.status, row.chunk_index, row.chunk_count) == (RowKind.CHUNK, D, 1, 3)
    assert (row.latent_path, row.frames_written, row.render_s, row.error) == (
        "/c/1.safetensors",
        97,
        0.5,
        None,
    )
    rows = read_rows(tmp_path).to_pylist()
    assert rows[1]["status"] == "done" and rows[1]["error"] == "resumed from an earlier attempt"
    assert completed_job_ids(tmp_path) == set()  # chunk rows never complete a job


@pytest.mark.parametrize("status", list(OutcomeStatus))
def test_one_function_maps_a_job_outcome_to_its_row(status: OutcomeStatus) -> None:
    job = make_job(3)
    outcome = JobOutcome(
        job_id=job.job_id, status=status, output_path="/o.mp4", thumbnail_path="/t.jpg",
        sidecar_path="/m.json", frames_written=9, duration_s=0.375, load_s=0.1, render_s=1.5,
        encode_s=0.2, total_s=1.9, error="e", worker="w", node="n", device="cpu", memory_policy="resident",
    )  # fmt: skip
    if status is OutcomeStatus.RESUMED:  # a chunk status: a job outcome never carries it
        with pytest.raises(ValueError, match="resumed"):
            outcome_row(ctx_for("r"), job, outcome, attempt=2, started_at=T0, finished_at=T0)
        return
    row = outcome_row(ctx_for("r"), job, outcome, attempt=2, started_at=T0, finished_at=T0)
    assert row.status is JobStatus(status.value) and row.row_kind is RowKind.JOB and row.attempt == 2
    fields = ("output_path", "thumbnail_path", "sidecar_path", "frames_written", "duration_s",
              "load_s", "render_s", "encode_s", "total_s", "error", "worker", "node", "device",
              "memory_policy")  # fmt: skip
    for name in fields:
        assert getattr(row, name) == getattr(outcome, name), name


# --- compaction ---------------------------------------------------------------------------------------


def test_compaction_merges_runs_and_is_idempotent(tmp_path: Path) -> None:
    log_statuses(tmp_path, "run1", [(make_job(i), D) for i in range(3)])
    before = read_rows(tmp_path)
    target = compact(tmp_path)
    assert target == parquet_path(tmp_path)
    assert not journal_path(tmp_path, "run1").exists()
    assert read_rows(tmp_path).equals(before)

    log_statuses(tmp_path, "run2", [(make_job(i), F) for i in range(2, 5)])
    merged = read_rows(tmp_path)
    compact(tmp_path)
    table = pq.read_table(target)
    assert table.num_rows == 6
    assert table.equals(merged)
    assert completed_job_ids(tmp_path) == {make_job(0).job_id, make_job(1).job_id}

    mtime = target.stat().st_mtime_ns
    assert compact(tmp_path) == target
    assert target.stat().st_mtime_ns == mtime  # nothing new: not rewritten
    assert read_rows(tmp_path).equals(merged)


def test_crash_between_rename_and_journal_delete_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    log_statuses(tmp_path, "run1", [(make_job(i), D) for i in range(4)])
    path = journal_path(tmp_path, "run1")
    saved = path.read_bytes()
    compact(tmp_path)
    path.write_bytes(saved)  # as if the process died right after os.replace
    assert read_rows(tmp_path).num_rows == 4
    compact(tmp_path)
    assert pq.read_table(parquet_path(tmp_path)).num_rows == 4
    assert not path.exists()


def test_stale_temp_file_from_a_killed_compaction_is_removed(tmp_path: Path) -> None:
    log_statuses(tmp_path, "run1", [(make_job(0), D)])
    stale = tmp_path / "ledger.parquet.tmp-1-dead"
    stale.write_bytes(b"PAR1 half written")
    compact(tmp_path)
    assert not stale.exists()
    assert read_rows(tmp_path).num_rows == 1


def test_compaction_leaves_a_live_journal_alone(tmp_path: Path) -> None:
    log_statuses(tmp_path, "shard0", [(make_job(0), D)])
    live = LedgerStore(tmp_path, "shard1", fsync=False)
    live.append(job_row(ctx_for("shard1"), make_job(1), D))
    compact(tmp_path)
    assert journal_path(tmp_path, "shard1").exists()
    assert pq.read_table(parquet_path(tmp_path))["run_id"].to_pylist() == ["shard0"]
    live.append(job_row(ctx_for("shard1"), make_job(2), D))  # still appending after the compaction
    assert read_rows(tmp_path).num_rows == 3
    live.close()
    compact(tmp_path)
    assert not journal_path(tmp_path, "shard1").exists()
    assert pq.read_table(parquet_path(tmp_path)).num_rows == 3


def test_compacting_an_empty_output_dir_writes_an_empty_readable_ledger(tmp_path: Path) -> None:
    table = pq.read_table(compact(tmp_path))
    assert table.num_rows == 0
    assert table.schema.names == LEDGER_SCHEMA.names
    assert completed_job_ids(tmp_path) == set()


# --- readers and schema evolution ----------------------------------------------------------------------


def test_parquet_is_read_directly_by_pyarrow_pandas_and_duckdb(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pd = pytest.importorskip("pandas")
    log_statuses(tmp_path, "run1", [(make_job(i), D) for i in range(5)])
    target = compact(tmp_path)
    assert pq.read_table(target).schema.equals(LEDGER_SCHEMA, check_metadata=True)
    frame = pd.read_parquet(target)
    assert len(frame) == 5
    assert set(frame["status"]) == {"done"}
    assert duckdb.sql(f"SELECT count(*) FROM '{target}'").fetchall() == [(5,)]
    seeds = duckdb.sql(
        f"SELECT CAST(json_extract(params_json, '$.seed') AS INTEGER) AS s FROM '{target}' ORDER BY s"
    ).fetchall()
    assert [s for (s,) in seeds] == [100, 101, 102, 103, 104]


def test_old_journal_and_parquet_with_other_columns_are_read(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    old_line = {"run_id": "run0", "seq": 0, "job_id": "a" * 16, "row_kind": "job", "status": "done",
                "retired_column": 42, "width": 64}  # fmt: skip
    (ledger_dir / "journal-run0.jsonl").write_text(json.dumps(old_line) + "\n")
    old_parquet = pa.table(
        {
            "run_id": ["runA"],
            "seq": [0],
            "job_id": ["b" * 16],
            "row_kind": ["job"],
            "status": ["done"],
            "gpu_model": ["H100"],
        }
    )
    pq.write_table(old_parquet, parquet_path(tmp_path))
    table = read_rows(tmp_path)
    assert table.schema.equals(LEDGER_SCHEMA)
    assert table["job_id"].to_pylist() == ["a" * 16, "b" * 16]
    assert table["width"].to_pylist() == [64, None]
    assert completed_job_ids(tmp_path) == {"a" * 16, "b" * 16}
    assert pq.read_table(compact(tmp_path)).equals(table)


def test_reading_a_projection_returns_those_columns_and_the_ordering_keys(tmp_path: Path) -> None:
    log_statuses(tmp_path, "run1", [(make_job(i), D) for i in range(3)])
    compact(tmp_path)
    log_statuses(tmp_path, "run2", [(make_job(0), F)])
    table = read_rows(tmp_path, columns=["status", "job_id"])
    assert table.column_names == ["run_id", "job_id", "status", "seq"]  # schema order
    assert table["status"].to_pylist() == ["done", "done", "done", "failed"]
    assert read_rows(tmp_path).select(table.column_names).equals(table)
    latest = latest_rows(tmp_path, columns=["seed"])
    assert sorted(latest["seed"].to_pylist()) == [100, 101, 102]
    with pytest.raises(LedgerError, match="unknown ledger column"):
        read_rows(tmp_path, columns=["sead"])


def test_unreadable_parquet_is_a_ledger_error(tmp_path: Path) -> None:
    parquet_path(tmp_path).write_bytes(b"not parquet at all")
    with pytest.raises(LedgerError, match="cannot read ledger"):
        read_rows(tmp_path)


def test_read_rows_many_keeps_output_dirs_apart(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    job = make_job(0)
    log_statuses(first, "run1", [(job, D)])
    log_statuses(second, "run1", [(job, F)])  # same job id, same run id, another output dir
    compact(second)
    table = read_rows_many([first, second])
    assert table["output_dir"].to_pylist() == [str(first), str(second)]
    latest = latest_job_rows(table)
    assert sorted(zip(latest["output_dir"].to_pylist(), latest["status"].to_pylist(), strict=True)) == [
        (str(first), "done"),
        (str(second), "failed"),
    ]
    assert read_rows_many([]).num_rows == 0
