"""Nothing unverified is ever done: a file is checked against the job that asked for it (its frames, its
sound), on the worker before the done row and on resume before a skip; stored chunk state is checked against
its own record (counts and checksums) and discarded, with the chunks after it, when it fails.

Runs on the fake backend (`model=fake`: numpy, no torch) so that a chained job costs a second; the frames it
writes spell their position, so a stitched file is checked frame by frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.media.probe import decode_frame_index, probe, read_frames
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

pytestmark = pytest.mark.slow

CHAINED = """
defaults: {width: 64, height: 64, frame_rate: 24}
jobs:
  - {name: long, prompt: "a long walk", seed: 3, num_frames: 300}
"""


def _chunk_dir(out: Path) -> Path:
    (found,) = (out / "chunks").iterdir()
    return found


def _forget_the_job(out: Path) -> None:
    """As if the driver died after the chunks were stored and before the job's file: no file, no rows."""
    for name in ("generated", "metadata", "ledger", "thumbnails"):
        for path in (out / name).glob("*") if (out / name).is_dir() else ():
            path.unlink()
    for name in ("ledger.parquet", "jobs.parquet"):
        (out / name).unlink(missing_ok=True)


def _positions(out: Path) -> list[int]:
    (clip,) = (out / "generated").glob("*.mp4")
    return [decode_frame_index(frame) for frame in read_frames(clip)]


def test_a_truncated_chunk_is_rendered_again_not_stitched_short(tmp_path: Path) -> None:
    """The regression: truncated stored chunk frames were fed as they were, and a 239-frame file of a
    300-frame job was recorded done. Through the command line, as the campaign found it."""
    manifest = write_manifest(tmp_path / "m", CHAINED)
    out = tmp_path / "out" / "m"
    cmd = [
        sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", "model=fake",
        f"output.root={tmp_path / 'out'}", "progress=false", "output.keep_chunks=true",
    ]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    _forget_the_job(out)
    frames = _chunk_dir(out) / "chunk_000.mkv"
    frames.write_bytes(frames.read_bytes()[: frames.stat().st_size * 3 // 4])
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    console = second.stdout + second.stderr
    assert "chunk_000.mkv" in console and "stored state discarded" in console  # the warning names the file
    assert _positions(out) == list(range(300))  # every frame, in order, none twice
    rows = pq.read_table(out / "ledger.parquet").to_pandas()
    chunks = rows[rows.row_kind == "chunk"]
    assert (chunks.status == "done").all() and len(chunks) == 3  # all three rendered again, none resumed
    assert "chunk_000.mkv" in chunks.sort_values("chunk_index").error.iloc[0]


@pytest.mark.parametrize(
    "damage", ["flip a byte of the latents", "drop the record", "a record of another plan"]
)
def test_damaged_chunk_state_heals(tmp_path: Path, app_factory: AppFactory, damage: str) -> None:
    manifest = write_manifest(tmp_path / "m", CHAINED)
    app = app_factory(f"manifest={manifest}", "model=fake", "output.keep_chunks=true")
    assert run(app, REPO_ROOT) == 0
    out = tmp_path / "outputs" / "m"
    _forget_the_job(out)
    chunks = _chunk_dir(out)
    state, record = chunks / "chunk_001.safetensors", chunks / "chunk_001.json"
    if damage == "flip a byte of the latents":
        data = bytearray(state.read_bytes())
        data[-5] ^= 0xFF
        state.write_bytes(bytes(data))
    elif damage == "drop the record":
        record.unlink()
    else:
        payload = json.loads(record.read_text())
        payload["kept_frames"] += 8
        record.write_text(json.dumps(payload))
    assert run(app, REPO_ROOT) == 0
    assert _positions(out) == list(range(300))
    rows = pq.read_table(out / "ledger.parquet").to_pandas()
    chunks_now = rows[(rows.row_kind == "chunk")].sort_values("chunk_index")
    resumed = chunks_now.error.fillna("").str.startswith("resumed").tolist()
    assert resumed == [True, False, False]  # chunk 0 verified and reused; 1 and 2 rendered again


def test_a_short_render_is_failed_never_done(tmp_path: Path, app_factory: AppFactory) -> None:
    """The file is counted against the job, not against what the worker fed its encoder."""
    manifest = write_manifest(
        tmp_path / "m",
        """
defaults: {width: 64, height: 64, frame_rate: 24}
jobs:
  - {name: short, prompt: "comes up short", seed: 1, num_frames: 17, tags: {fake_frames: "9"}}
  - {name: whole, prompt: "comes out whole", seed: 2, num_frames: 17}
""",
    )
    assert run(app_factory(f"manifest={manifest}", "model=fake"), REPO_ROOT) == 1
    out = tmp_path / "outputs" / "m"
    jobs = pq.read_table(out / "jobs.parquet").to_pandas().set_index("job_name")
    assert jobs.loc["whole", "status"] == "done"
    assert jobs.loc["short", "status"] == "failed"
    assert "holds 9 frames, the job asks for 17" in jobs.loc["short", "error"]
    assert not (out / "metadata" / f"{jobs.loc['short', 'job_id']}.json").exists()  # no sidecar: not done


def test_resume_counts_the_files_own_frames_against_the_job(tmp_path: Path, app_factory: AppFactory) -> None:
    """A done file swapped for a shorter one (with a sidecar that agrees with it) is rendered again: the
    cheap check reads the video track's sample count from the MP4's own tables."""
    manifest = write_manifest(
        tmp_path / "m",
        """
defaults: {width: 64, height: 64, frame_rate: 24}
jobs:
  - {name: a, prompt: "first", seed: 1, num_frames: 25}
  - {name: b, prompt: "second", seed: 2, num_frames: 9}
""",
    )
    app = app_factory(f"manifest={manifest}", "model=fake")
    assert run(app, REPO_ROOT) == 0
    out = tmp_path / "outputs" / "m"
    jobs = pq.read_table(out / "jobs.parquet").to_pandas().set_index("job_name")
    long_clip, short_clip = (Path(jobs.loc[name, "output_path"]) for name in ("a", "b"))
    long_clip.write_bytes(short_clip.read_bytes())
    sidecar = out / "metadata" / f"{jobs.loc['a', 'job_id']}.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "frames_written": 9}))  # the sidecar agrees with the short file
    assert run(app, REPO_ROOT) == 0
    assert probe(long_clip).frame_count == 25
    rows = pq.read_table(out / "ledger.parquet").to_pandas()
    retried = rows[(rows.job_name == "a") & (rows.status == "retried")]
    assert "holds 9 frames, the job asks for 25" in retried.error.iloc[0]
