"""Resume verification on real files, against what the job asks for: whole containers holding the job's
frames pass; 0-byte, truncated, short, foreign or unparsable outputs and sidecars fail with a reason, cheaply
(the MP4's own sample tables); `full` decodes and counts frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ltx2_batch.config import VerifyMode
from ltx2_batch.storage.verify import DoneRecord, Expected, container_problem, verify_files
from tests.conftest import write_input_files

RECORD = DoneRecord("run-1", 9)
JOB = Expected("j1", 9, audio=False)  # the reference clip: nine frames, no sound


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    write_input_files(tmp_path, ("clip.mp4",))  # nine real frames
    sidecar = tmp_path / "clip.json"
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 9}))
    return tmp_path / "clip.mp4", sidecar


def test_a_whole_clip_with_its_sidecar_passes_both_modes(files: tuple[Path, Path]) -> None:
    video, sidecar = files
    assert verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap) is None
    assert verify_files(video, sidecar, JOB, RECORD, VerifyMode.full) is None
    assert verify_files(video, sidecar, JOB, None, VerifyMode.cheap) is None  # no ledger row to compare


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (0, "is empty (0 bytes)"),
        (-1, "is truncated"),
        (-200, "is truncated"),
        (20, "is truncated"),
        (30, "cut"),
    ],
)
def test_a_cut_clip_fails_the_cheap_check(files: tuple[Path, Path], cut: int, reason: str) -> None:
    video, sidecar = files
    data = video.read_bytes()
    video.write_bytes(data[:cut] if cut else b"")
    problem = verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap)
    assert problem and reason in problem


def test_sidecar_problems_are_named(files: tuple[Path, Path]) -> None:
    video, sidecar = files
    sidecar.write_text("{not json")
    assert "sidecar clip.json: cannot read sidecar" in (
        verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap) or ""
    )
    sidecar.write_text(json.dumps({"job_id": "other", "run_id": "run-1", "frames_written": 9}))
    assert "names job 'other'" in (verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap) or "")
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-0", "frames_written": 9}))
    assert "written by run 'run-0'" in (verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap) or "")
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 17}))
    assert "sidecar says 17 frames written, the job asks for 9" in (
        verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap) or ""
    )
    sidecar.unlink()
    assert "cannot read sidecar" in (verify_files(video, sidecar, JOB, RECORD, VerifyMode.cheap) or "")


def test_the_file_is_counted_against_the_job_not_the_ledger(files: tuple[Path, Path]) -> None:
    """Ledger and sidecar both say 17 frames: the job asks for 17, the file holds 9. The cheap check reads
    the MP4's own sample table; `full` decodes."""
    video, sidecar = files
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 17}))
    record, job = DoneRecord("run-1", 17), Expected("j1", 17, audio=False)
    assert "holds 9 frames, the job asks for 17" in (
        verify_files(video, sidecar, job, record, VerifyMode.cheap) or ""
    )
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 9}))
    assert verify_files(video, sidecar, JOB, RECORD, VerifyMode.full) is None
    assert "has no audio track" in (
        verify_files(video, sidecar, Expected("j1", 9, audio=True), RECORD, VerifyMode.cheap) or ""
    )


def test_expected_frames_come_from_the_jobs_parameters() -> None:
    params = {"mode": "video", "num_frames": 9, "audio": True, "upscale": {"temporal": True}}
    assert Expected.from_params("j", json.dumps(params)) == Expected("j", 17, audio=True)
    assert Expected.from_params("j", json.dumps({**params, "mode": "image", "num_frames": 1})) == Expected(
        "j", 1, audio=False
    )
    assert Expected.from_params("j", "{not json") is None
    assert Expected.from_params("j", json.dumps({"mode": "video"})) is None


def test_png_end_and_signature(tmp_path: Path) -> None:
    still = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(still)
    assert container_problem(still) is None
    still.write_bytes(still.read_bytes()[:-5])
    assert "truncated PNG" in (container_problem(still) or "")
    still.write_text("text")
    assert container_problem(still) == "is not a PNG"
    assert container_problem(tmp_path / "missing.mp4") == "is missing"


def test_a_rebuilt_done_row_vouches_for_the_original_runs_sidecar(files: tuple[Path, Path]) -> None:
    video, sidecar = files
    rebuilt = DoneRecord("run-9", 9, "rebuilt from its sidecar (written by run run-1)")
    assert rebuilt.sidecar_run_id == "run-1"
    assert verify_files(video, sidecar, JOB, rebuilt, VerifyMode.cheap) is None
    other = DoneRecord("run-9", 9, "rebuilt from its sidecar (written by run run-2)")
    assert "written by run 'run-1'" in (verify_files(video, sidecar, JOB, other, VerifyMode.cheap) or "")
