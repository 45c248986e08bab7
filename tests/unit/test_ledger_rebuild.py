"""A damaged ledger.parquet names the fix; `rebuild_ledger` restores the done set from verified sidecars,
keeps the damaged file aside and leaves untrustworthy outputs out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltx2_batch.errors import LedgerError
from ltx2_batch.ledger.rebuild import rebuild_ledger
from ltx2_batch.ledger.store import completed_job_ids, parquet_path, read_rows
from tests.conftest import write_input_files


def _finished(out: Path, job_id: str, run_id: str = "run-0") -> Path:
    """A job's files as a worker leaves them: clip, then sidecar."""
    write_input_files(out / "generated", (f"{job_id}.mp4",))
    params = {
        "prompt": "a cat",
        "width": 32,
        "height": 32,
        "num_frames": 9,
        "frame_rate": 8,
        "seed": 1,
        "mode": "video",
        "audio": False,
    }  # the reference clip: nine frames, no sound
    sidecar = out / "metadata" / f"{job_id}.json"
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "job_id": job_id,
        "name": f"job-{job_id}",
        "run_id": run_id,
        "frames_written": 9,
        "output": f"generated/{job_id}.mp4",
        "params": json.dumps(params),
        "tags": {"k": "v"},
    }
    sidecar.write_text(json.dumps(meta))
    return out / "generated" / f"{job_id}.mp4"


@pytest.mark.parametrize("damage", [b"", b"PAR1\x00\x00 truncated"])
def test_a_damaged_ledger_names_the_fix_and_rebuild_restores_the_done_set(
    tmp_path: Path, damage: bytes
) -> None:
    for job_id in ("aaaa", "bbbb", "cccc"):
        _finished(tmp_path, job_id)
    bad = _finished(tmp_path, "dddd")
    bad.write_bytes(bad.read_bytes()[:-50])  # truncated: not to be trusted
    (tmp_path / "metadata" / "eeee.json").write_text("{ not json")
    parquet_path(tmp_path).write_bytes(damage)
    with pytest.raises(LedgerError, match="ledger_rebuild=true"):
        completed_job_ids(tmp_path)

    report = rebuild_ledger(tmp_path)
    assert (
        report.restored == 3 and report.moved_aside is not None and report.moved_aside.read_bytes() == damage
    )
    assert sorted(name for name, _ in report.rejected) == ["dddd.json", "eeee.json"]
    assert completed_job_ids(tmp_path) == {"aaaa", "bbbb", "cccc"}
    rows = read_rows(tmp_path).to_pylist()
    assert {r["error"] for r in rows} == {"rebuilt from its sidecar (written by run run-0)"}
    assert {r["prompt"] for r in rows} == {"a cat"}

    again = rebuild_ledger(tmp_path)  # idempotent: a readable ledger is kept, nothing restored twice
    assert again.restored == 0 and again.moved_aside is None
    assert len(read_rows(tmp_path)) == 3
