"""Chained jobs: chunk counts, exact frame counts and audio durations on the stitched files, seams equal to
the chunk renders, the latent and audio handoff, seam smoothing, and resume after a crash mid-job.

On the fake model (its frames spell their position, its latents carry positions across the handoff): every
length stitches to frames 0..N-1 with sound as long as the picture, and a job killed mid-chain resumes to the
same file, byte for byte. On the tiny real model (in process, 32x32 one-stage windows of 49 frames: the
chaining code does not care how long a window is, a CPU does): the seams, the latent and audio handoff and
seam smoothing, read back from the kept chunk files.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import load_file

from ltx2_batch.chaining.plan import audio_handoff, latent_alignment, plan_chunks
from ltx2_batch.cli import run
from ltx2_batch.media.probe import decode_frame_index, probe, read_frames
from tests.conftest import REPO_ROOT, AppFactory, compose_app, write_manifest

CHAINED = """
defaults: {{width: 32, height: 32, pipeline: distilled, upscale: {{spatial: false}}, audio: true}}
jobs:
{jobs}
"""
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # BT.709, as the files are tagged
TINY_WINDOW = "chaining.chunk_frames=49"  # 49-frame windows: 24 new frames each after the 25-frame overlap


def _manifest(folder: Path, lengths: list[int], tags: str = "") -> Path:
    prompt = "A long walk along the beach at dusk"
    jobs = "\n".join(
        f"  - {{name: len{n}, prompt: '{prompt}', num_frames: {n}, seed: {n}{tags}}}" for n in lengths
    )
    return write_manifest(folder / "m", CHAINED.format(jobs=jobs))


def _rows(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "ledger.parquet").to_pandas()


def _done(rows: pd.DataFrame, name: str) -> pd.Series:
    return rows[(rows.row_kind == "job") & (rows.job_name == name) & (rows.status == "done")].iloc[0]


def _states(out: Path, job_id: str, count: int) -> list[dict[str, np.ndarray]]:
    return [load_file(str(out / "chunks" / job_id / f"chunk_{i:03d}.safetensors")) for i in range(count)]


# ---------------------------------------------------------------- fake model: lengths, and a crash mid-job


@pytest.fixture(scope="module")
def fake_chained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("fake_chain")
    manifest = _manifest(tmp, [122, 218, 300, 500])
    app = compose_app(
        f"output.root={tmp / 'outputs'}", f"manifest={manifest}", "model=fake", "progress=false"
    )
    assert run(app, REPO_ROOT) == 0
    out = tmp / "outputs" / "m"
    return out, _rows(out)


@pytest.mark.parametrize(("frames", "chunks"), [(122, 2), (218, 3), (300, 3), (500, 5)])
def test_a_chained_file_holds_frames_0_to_n_and_sound_as_long(
    fake_chained: tuple[Path, pd.DataFrame], frames: int, chunks: int
) -> None:
    """The fake's frames spell their position in the finished video: the stitched file is exactly frames
    0..N-1 in order (no seam duplicates, drops or shifts a frame), and its sound lasts as long."""
    _out, rows = fake_chained
    job = _done(rows, f"len{frames}")
    info = probe(job.output_path)
    assert info.frame_count == frames
    assert abs(info.video_duration_s - frames / 24) < 1e-6
    assert info.has_audio
    assert abs(info.audio_duration_s - info.video_duration_s) < 1024 / info.audio_sample_rate
    assert [decode_frame_index(frame) for frame in read_frames(job.output_path)] == list(range(frames))
    chunk_rows = rows[(rows.row_kind == "chunk") & (rows.job_id == job.job_id)]
    assert sorted(chunk_rows.chunk_index) == list(range(chunks))
    assert set(chunk_rows.chunk_count) == {chunks}
    assert set(chunk_rows.worker) == {job.worker} and job.worker  # a chunk is rendered where its job is
    assert plan_chunks(frames, 121, 24, 8).chunk_count == chunks


@pytest.mark.slow  # a launch of the command
def test_a_job_killed_mid_chain_resumes_from_its_chunks_to_the_same_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL to the command after its second chunk (a crash: no handler runs, no row is written after it);
    the rerun renders only the missing chunk, conditioned on the stored one, and writes the file an
    uninterrupted run writes. Each fake window takes 0.4 s (tag), so the kill finds the third rendering."""
    manifest = _manifest(tmp_path, [300], tags=', tags: {fake_render_s: "0.4"}')
    out_root = tmp_path / "outputs"
    cmd = [
        sys.executable,
        "-m",
        "ltx2_batch",
        f"manifest={manifest}",
        f"output.root={out_root}",
        "model=fake",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "chunk 2/3" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    chunk_dir = next((out_root / "m" / "chunks").iterdir())
    survivors = {p.name: p.stat().st_mtime_ns for p in chunk_dir.glob("*.safetensors")}
    # chunks 1 and 2 were complete when "chunk 2/3" was reported; the last chunk's state is never stored
    # unless the chunk files are kept (it would be deleted as soon as the job's file is done)
    assert {"chunk_000.safetensors", "chunk_001.safetensors"} == set(survivors), "".join(seen)
    assert not list(chunk_dir.glob("chunk_002.*"))
    generated = out_root / "m" / "generated"
    # the stitch was streaming: only its temporary may exist, never a file under the job's name
    assert not generated.exists() or all(p.name.endswith(".partial") for p in generated.iterdir())

    capsys.readouterr()
    app = compose_app(
        f"manifest={manifest}", f"output.root={out_root}", "model=fake", "output.keep_chunks=true"
    )
    assert run(app, REPO_ROOT) == 0
    log = capsys.readouterr().err
    assert "chunk 1/3 of len300 (resumed)" in log and "chunk 2/3 of len300 (resumed)" in log, log
    for name, mtime in survivors.items():
        assert (chunk_dir / name).stat().st_mtime_ns == mtime  # not re-rendered
    job = _done(_rows(out_root / "m"), "len300")
    assert [decode_frame_index(frame) for frame in read_frames(job.output_path)] == list(range(300))
    assert not list(generated.glob("*.partial"))  # the killed stitch's temporary was removed
    # the re-rendered chunk started where the resumed chunk's latents say (the fake's channel 0 holds the
    # position of each latent frame): it was conditioned on the stored state, not on a fresh render
    k = latent_alignment(24, 8).latent_slice_count
    resumed = load_file(str(chunk_dir / "chunk_001.safetensors"))["stage1"]
    fresh = load_file(str(chunk_dir / "chunk_002.safetensors"))["stage1"]
    np.testing.assert_array_equal(fresh[:, 0, :k], resumed[:, 0, -k:])
    # the same file, byte for byte, as a run that was never interrupted
    clean_root = tmp_path / "clean"
    assert run(compose_app(f"manifest={manifest}", f"output.root={clean_root}", "model=fake"), REPO_ROOT) == 0
    clean_file = clean_root / "m" / "generated" / Path(job.output_path).name
    assert Path(job.output_path).read_bytes() == clean_file.read_bytes()
    assert not (clean_root / "m" / "chunks" / chunk_dir.name).exists()  # resume state removed once done


def test_a_blend_longer_than_the_handoff_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, [218])
    app = compose_app(f"output.root={tmp_path / 'o'}", f"manifest={manifest}", "chaining.blend=4")
    assert run(app, REPO_ROOT) == 2  # refused before any model work
    err = capsys.readouterr().err
    assert "chaining.blend" in err and "0..3" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- tiny model: seams and the handoff


@pytest.fixture(scope="module")
def tiny_chained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.Series]:
    """One tiny job of 80 frames in 49-frame windows: three chunks (49 + 24 + 7 kept), chunk files kept,
    lossless video (the seams are compared with the chunk renders)."""
    tmp = tmp_path_factory.mktemp("chain")
    app = compose_app(
        f"output.root={tmp / 'outputs'}",
        f"manifest={_manifest(tmp, [80])}",
        TINY_WINDOW,
        "output.keep_chunks=true",
        "output.video_crf=0",
        "progress=false",
    )
    assert run(app, REPO_ROOT) == 0
    out = tmp / "outputs" / "m"
    return out, _done(_rows(out), "len80")


@pytest.mark.slow
def test_the_stitched_file_has_exact_frames_sound_and_seams_equal_to_the_chunk_renders(
    tiny_chained: tuple[Path, pd.Series],
) -> None:
    """Every stitched frame around each seam is, of all frames rendered, the one the plan says it is:
    nothing duplicated, nothing dropped. Identity is judged by nearest match in luma: the file is yuv420p
    (luma at full resolution, lossless at crf 0), and a 32x32 render's colour detail is what 4:2:0 drops."""
    out, job = tiny_chained
    info = probe(job.output_path)
    assert info.frame_count == 80 and abs(info.video_duration_s - 80 / 24) < 1e-6
    assert info.has_audio
    assert abs(info.audio_duration_s - info.video_duration_s) < 1024 / info.audio_sample_rate
    stitched = read_frames(job.output_path).astype(np.float32) @ LUMA
    plan = plan_chunks(80, 49, 24, 8)
    assert plan.chunk_count == 3
    rendered = []
    for chunk in plan.chunks:
        kept = read_frames(out / "chunks" / job.job_id / f"chunk_{chunk.index:03d}.mkv")  # lossless store
        assert len(kept) == chunk.kept_frames
        rendered.append(kept.astype(np.float32) @ LUMA)
    reference = np.concatenate(rendered)  # the kept frames of every chunk, in plan order
    assert len(reference) == len(stitched) == 80
    seams = [c.output_start for c in plan.chunks[1:]]
    for position in sorted({p + d for p in seams for d in (-2, -1, 0, 1, 2)}):
        window = range(max(0, position - 3), min(80, position + 4))
        errors = {i: float(np.abs(stitched[position] - reference[i]).mean()) for i in window}
        assert min(errors, key=errors.get) == position, (position, errors)


@pytest.mark.slow
def test_the_handed_off_latents_are_the_previous_chunks_tail(tiny_chained: tuple[Path, pd.Series]) -> None:
    """Video: chunk i's first k stage-1 latent frames are chunk i-1's last k, and what follows is new. Sound
    runs on across a seam: chunk i's audio latents over the overlap are chunk i-1's, bit for bit (kept clean
    in both stages), and the audio after the overlap is new."""
    out, job = tiny_chained
    k = latent_alignment(24, 8).latent_slice_count
    states = _states(out, job.job_id, 3)
    for prev, nxt in itertools.pairwise(states):
        np.testing.assert_array_equal(nxt["stage1"][:, :, :k], prev["stage1"][:, :, -k:])
        assert not np.array_equal(nxt["stage1"][:, :, k : k + 1], prev["stage1"][:, :, -1:])
    plan = plan_chunks(80, 49, 24, 8)
    spans = []
    for i in (1, 2):
        span = audio_handoff(plan.chunks[i - 1], plan.chunks[i], 24.0, 25.0)
        assert span is not None and span.count == 26  # 25 frames at 24 fps = 26 audio latents at 25/s
        spans.append(span.count)
        previous, current = states[i - 1]["audio"], states[i]["audio"]
        np.testing.assert_array_equal(
            current[:, :, : span.count], previous[:, :, span.start : span.start + span.count]
        )
        assert not np.array_equal(current[:, :, span.count : span.count + 1], previous[:, :, -1:])
    sidecar = json.loads(Path(job.sidecar_path).read_text())
    assert [c["handoff_audio_frames"] for c in sidecar["chunks"]] == [0, *spans]


@pytest.mark.slow
@pytest.mark.usefixtures("warm_run_backends")
def test_seam_smoothing_blends_the_overlap_and_matches_statistics(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    """chaining.blend=2: the first handed-off latent frames stay the previous chunk's, the last two are
    free to move; chaining.adain: the later chunk's new latents take the first chunk's channel statistics.
    Frame and sample counts stay exact either way."""
    app = app_factory(
        f"manifest={_manifest(tmp_path, [73])}",
        TINY_WINDOW,
        "output.keep_chunks=true",
        "chaining.blend=2",
        "chaining.adain=true",
    )
    assert run(app, REPO_ROOT) == 0
    out = tmp_path / "outputs" / "m"
    job = _done(_rows(out), "len73")
    assert probe(job.output_path).frame_count == 73
    first, second = _states(out, job.job_id, 2)
    k = latent_alignment(24, 8).latent_slice_count
    np.testing.assert_array_equal(second["stage1"][:, :, : k - 2], first["stage1"][:, :, -k:-2])  # hard part
    assert not np.array_equal(second["stage1"][:, :, k - 1], first["stage1"][:, :, -1])  # faded: moved
    reference = first["final"].mean(axis=(0, 2, 3, 4))
    matched = second["final"][:, :, k:].mean(axis=(0, 2, 3, 4))
    np.testing.assert_allclose(matched, reference, atol=1e-4)  # AdaIN: the first chunk's channel means


@pytest.mark.slow
def test_planner_temporal_scale_matches_the_loaded_vae(tiny_root: Path) -> None:
    """The driver plans chunks before any model is loaded; the worker re-plans with the VAE's factor."""
    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.manifest.select import LTX2_TEMPORAL_SCALE

    backend = create_backend(compose_app(f"model.root={tiny_root.parent}").model, REPO_ROOT)
    try:
        assert backend.temporal_scale == LTX2_TEMPORAL_SCALE
    finally:
        backend.close()
