"""Resume verification on real files: whole containers pass; 0-byte, truncated, foreign or unparsable
outputs and sidecars fail with a reason, cheaply; `full` decodes and counts frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ltx2_batch.config import VerifyMode
from ltx2_batch.storage.verify import DoneRecord, container_problem, verify_files
from tests.conftest import write_input_files

RECORD = DoneRecord("run-1", 9)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    write_input_files(tmp_path, ("clip.mp4",))  # nine real frames
    sidecar = tmp_path / "clip.json"
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 9}))
    return tmp_path / "clip.mp4", sidecar


def test_a_whole_clip_with_its_sidecar_passes_both_modes(files: tuple[Path, Path]) -> None:
    video, sidecar = files
    assert verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap) is None
    assert verify_files(video, sidecar, "j1", RECORD, VerifyMode.full) is None
    assert verify_files(video, sidecar, "j1", None, VerifyMode.cheap) is None  # no ledger row to compare


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
    problem = verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap)
    assert problem and reason in problem


def test_sidecar_problems_are_named(files: tuple[Path, Path]) -> None:
    video, sidecar = files
    sidecar.write_text("{not json")
    assert "sidecar clip.json: cannot read sidecar" in (
        verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap) or ""
    )
    sidecar.write_text(json.dumps({"job_id": "other", "run_id": "run-1", "frames_written": 9}))
    assert "names job 'other'" in (verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap) or "")
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-0", "frames_written": 9}))
    assert "written by run 'run-0'" in (verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap) or "")
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 17}))
    assert "17 frames written, the ledger 9" in (
        verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap) or ""
    )
    sidecar.unlink()
    assert "cannot read sidecar" in (verify_files(video, sidecar, "j1", RECORD, VerifyMode.cheap) or "")


def test_full_mode_counts_decoded_frames(files: tuple[Path, Path]) -> None:
    video, sidecar = files
    sidecar.write_text(json.dumps({"job_id": "j1", "run_id": "run-1", "frames_written": 17}))
    record = DoneRecord("run-1", 17)  # ledger and sidecar agree on 17, the file holds 9
    assert verify_files(video, sidecar, "j1", record, VerifyMode.cheap) is None
    problem = verify_files(video, sidecar, "j1", record, VerifyMode.full)
    assert problem and "decodes to 9 frames, the ledger says 17" in problem


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
    assert verify_files(video, sidecar, "j1", rebuilt, VerifyMode.cheap) is None
    other = DoneRecord("run-9", 9, "rebuilt from its sidecar (written by run run-2)")
    assert "written by run 'run-1'" in (verify_files(video, sidecar, "j1", other, VerifyMode.cheap) or "")
