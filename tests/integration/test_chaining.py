"""Chained jobs on the tiny model: chunk counts, exact frame counts and audio durations on the stitched
files, seams equal to the chunk renders, the latent handoff, and resume after a crash mid-job."""

from __future__ import annotations

import hashlib
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
from ltx2_batch.media.probe import probe, read_frames
from tests.conftest import REPO_ROOT, write_manifest

pytestmark = pytest.mark.slow

# One-stage distilled at the smallest legal size keeps a 121-frame chunk to about a second on a CPU.
CHAINED = """
defaults: {{width: 32, height: 32, frame_rate: 24, pipeline: distilled,
           upscale: {{spatial: false}}, audio: true}}
jobs:
{jobs}
"""


def _manifest(tmp_path: Path, lengths: list[int]) -> Path:
    jobs = "\n".join(
        f"  - {{name: len{n}, prompt: 'A long walk along the beach at dusk', num_frames: {n}, seed: {n}}}"
        for n in lengths
    )
    return write_manifest(tmp_path / "m", CHAINED.format(jobs=jobs))


def _rows(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "ledger.parquet").to_pandas()


@pytest.fixture(scope="module")
def chained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    from tests.conftest import compose_app

    tmp = tmp_path_factory.mktemp("chain")
    manifest = _manifest(tmp, [122, 218, 300, 500])
    app = compose_app(
        f"output.root={tmp / 'outputs'}",
        f"manifest={manifest}",
        "output.keep_chunks=true",
        "output.video_crf=0",
    )
    assert run(app, REPO_ROOT) == 0
    out = tmp / "outputs" / "m"
    return out, _rows(out)


@pytest.mark.parametrize(("frames", "chunks"), [(122, 2), (218, 3), (300, 3), (500, 5)])
def test_stitched_file_has_exact_frames_and_matching_audio(
    chained_run: tuple[Path, pd.DataFrame], frames: int, chunks: int
) -> None:
    _out, rows = chained_run
    job = rows[(rows.row_kind == "job") & (rows.job_name == f"len{frames}") & (rows.status == "done")].iloc[0]
    info = probe(job.output_path)
    assert info.frame_count == frames
    assert abs(info.video_duration_s - frames / 24) < 1e-6
    assert info.has_audio
    assert abs(info.audio_duration_s - info.video_duration_s) < 1024 / info.audio_sample_rate
    chunk_rows = rows[(rows.row_kind == "chunk") & (rows.job_id == job.job_id)]
    assert sorted(chunk_rows.chunk_index) == list(range(chunks))
    assert set(chunk_rows.chunk_count) == {chunks}
    assert plan_chunks(frames, 121, 24, 8).chunk_count == chunks


def test_seams_equal_the_chunk_renders(chained_run: tuple[Path, pd.DataFrame]) -> None:
    """Every stitched frame around each seam is, of all frames rendered, the one the plan says it is:
    nothing duplicated, nothing dropped (H.264 is lossy, so identity is judged by nearest match)."""
    out, rows = chained_run
    job = rows[(rows.row_kind == "job") & (rows.job_name == "len300") & (rows.status == "done")].iloc[0]
    stitched = read_frames(job.output_path).astype(np.float32)
    plan = plan_chunks(300, 121, 24, 8)
    rendered = []
    for chunk in plan.chunks:
        kept = read_frames(out / "chunks" / job.job_id / f"chunk_{chunk.index:03d}.mkv")  # lossless store
        assert len(kept) == chunk.kept_frames
        rendered.append(kept.astype(np.float32))
    reference = np.concatenate(rendered)  # the kept frames of every chunk, in plan order
    assert len(reference) == len(stitched) == 300
    seams = [c.output_start for c in plan.chunks[1:]]
    for position in sorted({p + d for p in seams for d in (-2, -1, 0, 1, 2)}):
        window = range(max(0, position - 3), min(300, position + 4))
        errors = {i: float(np.abs(stitched[position] - reference[i]).mean()) for i in window}
        assert min(errors, key=errors.get) == position, (position, errors)


def test_handed_off_latent_equals_tail_of_previous_chunk(chained_run: tuple[Path, pd.DataFrame]) -> None:
    out, rows = chained_run
    job = rows[(rows.row_kind == "job") & (rows.job_name == "len300") & (rows.status == "done")].iloc[0]
    k = latent_alignment(24, 8).latent_slice_count
    latents = [load_file(str(out / "chunks" / job.job_id / f"chunk_{i:03d}.safetensors")) for i in range(3)]
    for prev, nxt in itertools.pairwise(latents):
        np.testing.assert_array_equal(nxt["stage1"][:, :, :k], prev["stage1"][:, :, -k:])
        assert not np.array_equal(nxt["stage1"][:, :, k : k + 1], prev["stage1"][:, :, -1:])


def test_handed_off_audio_latents_equal_the_previous_chunks_audio_over_the_overlap(
    chained_run: tuple[Path, pd.DataFrame],
) -> None:
    """Sound runs on across a seam: chunk i's audio latents over the overlap are chunk i-1's, bit for bit
    (kept clean in both stages), and the audio after the overlap is new."""
    out, rows = chained_run
    job = rows[(rows.row_kind == "job") & (rows.job_name == "len300") & (rows.status == "done")].iloc[0]
    plan = plan_chunks(300, 121, 24, 8)
    states = [load_file(str(out / "chunks" / job.job_id / f"chunk_{i:03d}.safetensors")) for i in range(3)]
    for i in (1, 2):
        span = audio_handoff(plan.chunks[i - 1], plan.chunks[i], 24.0, 25.0)
        assert span is not None and (span.start, span.count) == (100, 26)  # 96 frames = 4 s; 25/24 s overlap
        previous, current = states[i - 1]["audio"], states[i]["audio"]
        np.testing.assert_array_equal(
            current[:, :, : span.count], previous[:, :, span.start : span.start + span.count]
        )
        assert not np.array_equal(current[:, :, span.count : span.count + 1], previous[:, :, -1:])
    sidecar = json.loads(Path(job.sidecar_path).read_text())
    assert [c["handoff_audio_frames"] for c in sidecar["chunks"]] == [0, 26, 26]


def test_kill_mid_job_then_rerun_renders_only_missing_chunks(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [300])
    out_root = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={out_root}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "chunk 2/3" in line:
            proc.send_signal(signal.SIGKILL)  # a crash: no handler runs, no row is written after this
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

    again = subprocess.run(
        [*cmd, "output.keep_chunks=true"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = again.stdout + again.stderr
    assert again.returncode == 0, log
    assert "chunk 1/3 of len300 (resumed)" in log, "".join(seen) + log
    assert "chunk 2/3 of len300 (resumed)" in log, log
    for name, mtime in survivors.items():
        assert (chunk_dir / name).stat().st_mtime_ns == mtime  # not re-rendered
    rows = _rows(out_root / "m")
    job = rows[(rows.row_kind == "job") & (rows.status == "done")]
    assert len(job) == 1 and probe(job.output_path.iloc[0]).frame_count == 300
    assert not list(generated.glob("*.partial"))  # the killed stitch's temporary was removed
    # the re-rendered chunk was conditioned on the resumed chunk's latents, not on a fresh render
    k = latent_alignment(24, 8).latent_slice_count
    resumed = load_file(str(chunk_dir / "chunk_001.safetensors"))
    fresh = load_file(str(chunk_dir / "chunk_002.safetensors"))
    np.testing.assert_array_equal(fresh["stage1"][:, :, :k], resumed["stage1"][:, :, -k:])
    # the same file, byte for byte, as a run that was never interrupted
    clean_root = tmp_path / "clean"
    clean = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={clean_root}"]
    uninterrupted = subprocess.run(
        clean, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert uninterrupted.returncode == 0, uninterrupted.stdout + uninterrupted.stderr
    resumed_file = Path(job.output_path.iloc[0]).read_bytes()
    clean_file = (clean_root / "m" / "generated" / Path(job.output_path.iloc[0]).name).read_bytes()
    assert hashlib.sha256(resumed_file).digest() == hashlib.sha256(clean_file).digest()
    assert not (clean_root / "m" / "chunks" / chunk_dir.name).exists()  # resume state removed once done


def test_planner_temporal_scale_matches_the_loaded_vae() -> None:
    """The driver plans chunks before any model is loaded; the worker re-plans with the VAE's factor."""
    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.manifest.select import LTX2_TEMPORAL_SCALE
    from tests.conftest import compose_app

    backend = create_backend(compose_app().model, REPO_ROOT)
    try:
        assert backend.temporal_scale == LTX2_TEMPORAL_SCALE
    finally:
        backend.close()


def test_seam_smoothing_blends_the_overlap_and_matches_statistics(tmp_path: Path) -> None:
    """chaining.blend=2: the first handed-off latent frames stay the previous chunk's, the last two are
    free to move; chaining.adain: the later chunk's new latents take the first chunk's channel statistics.
    Frame and sample counts stay exact either way."""
    from tests.conftest import compose_app

    manifest = _manifest(tmp_path, [218])
    app = compose_app(
        f"output.root={tmp_path / 'outputs'}",
        f"manifest={manifest}",
        "output.keep_chunks=true",
        "chaining.blend=2",
        "chaining.adain=true",
    )
    assert run(app, REPO_ROOT) == 0
    out = tmp_path / "outputs" / "m"
    rows = _rows(out)
    job = rows[(rows.row_kind == "job") & (rows.status == "done")].iloc[0]
    assert probe(job.output_path).frame_count == 218
    states = [load_file(str(out / "chunks" / job.job_id / f"chunk_{i:03d}.safetensors")) for i in range(3)]
    k = latent_alignment(24, 8).latent_slice_count
    first, second = states[0], states[1]
    np.testing.assert_array_equal(second["stage1"][:, :, : k - 2], first["stage1"][:, :, -k:-2])  # hard part
    assert not np.array_equal(second["stage1"][:, :, k - 1], first["stage1"][:, :, -1])  # faded: moved
    reference = first["final"].mean(axis=(0, 2, 3, 4))
    matched = second["final"][:, :, k:].mean(axis=(0, 2, 3, 4))
    np.testing.assert_allclose(matched, reference, atol=1e-4)  # AdaIN: the first chunk's channel means


def test_a_blend_longer_than_the_handoff_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import compose_app

    manifest = _manifest(tmp_path, [218])
    app = compose_app(f"output.root={tmp_path / 'o'}", f"manifest={manifest}", "chaining.blend=4")
    assert run(app, REPO_ROOT) == 2  # refused before any model work
    err = capsys.readouterr().err
    assert "chaining.blend" in err and "0..3" in err
    assert not (tmp_path / "o").exists()
