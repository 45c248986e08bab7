"""output.overlap=encode|decode on the tiny model: job n's files (and decode) beside job n+1's render, same
bytes as a sequential run of the same engine, locally (both modes) and on a Ray actor of the session's Ray
(decode, which also encodes on the thread: what is Ray's own, an actor taking a second call while it writes
the first, is the same for both modes, and each Ray run costs an actor that imports torch and loads the
model).

The cheapest shapes that still have an overlap to make: two one-window videos and a still (the still always
decodes in the render loop), 32x32 one-stage. One sequential run per engine is the reference.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

pytestmark = pytest.mark.slow

JOBS = """
defaults: {width: 32, height: 32, num_frames: 9, pipeline: distilled, upscale: {spatial: false}}
jobs:
  - name: sweep
    prompt: "A cat walks on a sunny street, soft piano music."
    sweep: {grid: {seed: [1, 2]}}
  - {name: still, prompt: "A red apple on a table.", num_frames: 1, seed: 4}
"""
VIDEOS = 2


def _rows(out: Path) -> pd.DataFrame:
    table = pq.read_table(out / "ledger.parquet").to_pandas()
    return table[(table.row_kind == "job") & (table.status != "running")].set_index("job_id")


def _files(out: Path) -> dict[str, bytes]:
    return {
        f"{folder}/{p.name}": p.read_bytes()
        for folder in ("generated", "thumbnails")
        for p in sorted((out / folder).iterdir())
    }


def _same_files(reference: Path, overlapped: Path, what: str) -> pd.DataFrame:
    rows = _rows(overlapped)
    assert set(_rows(reference).index) == set(rows.index)
    assert (rows.status == "done").all() and len(rows) == VIDEOS + 1, what
    seq_files, ovl_files = _files(reference), _files(overlapped)
    assert len(seq_files) == 2 * (VIDEOS + 1)  # the MP4s and the PNG, and a thumbnail each
    assert seq_files.keys() == ovl_files.keys()
    for name, data in seq_files.items():
        assert ovl_files[name] == data, f"{name} differs between the sequential and the {what} run"
    # each outcome is reported complete: its sidecar (written last) exists
    assert all(Path(p).is_file() for p in rows.sidecar_path)
    return rows


def _decoded_on_thread(rows: pd.DataFrame) -> list[bool]:
    return sorted(json.loads(Path(p).read_text())["backend"]["decode_overlapped"] for p in rows.sidecar_path)


@pytest.mark.usefixtures("warm_run_backends")
def test_overlapped_and_sequential_local_runs_write_identical_files(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """encode: MP4s written on the encode thread; decode: the VAE/audio decode runs there too, beside the
    next job's denoise. Either way every file equals the sequential run's, byte for byte."""
    from ltx2_batch.backends.factory import adapter
    from ltx2_batch.media import write as media_write
    from ltx2_batch.worker import job_files as job_files_module

    Ltx2Backend = adapter()  # noqa: N806 - the class, patched for this test

    decode_threads: list[str] = []
    real_decode = Ltx2Backend._decode

    def recording_decode(self: Ltx2Backend, state: object) -> object:
        decode_threads.append(threading.current_thread().name)
        return real_decode(self, state)

    monkeypatch.setattr(Ltx2Backend, "_decode", recording_decode)
    encode_threads: set[str] = set()
    real_write_mp4 = media_write.write_mp4

    def recording_write_mp4(*args: object, **kwargs: object) -> object:
        encode_threads.add(threading.current_thread().name)
        return real_write_mp4(*args, **kwargs)

    monkeypatch.setattr(job_files_module, "write_mp4", recording_write_mp4)  # the real encoder runs
    manifest = write_manifest(tmp_path / "m", JOBS)
    outputs = tmp_path / "outputs"
    off = ("output.overlap=off",)  # explicit: a CUDA host too
    assert run(app_factory(f"manifest={manifest}", "output.run_name=seq", *off), REPO_ROOT) == 0
    assert decode_threads and all(name == "MainThread" for name in decode_threads)
    assert encode_threads == {"MainThread"}

    for overlap in ("encode", "decode"):
        decode_threads.clear()
        encode_threads.clear()
        app = app_factory(f"manifest={manifest}", f"output.run_name={overlap}", f"output.overlap={overlap}")
        assert run(app, REPO_ROOT) == 0
        rows = _same_files(outputs / "seq", outputs / overlap, overlap)
        # the MP4s of the overlapped run were written by the encode thread, not the render loop
        assert encode_threads and all(name.startswith("encode") for name in encode_threads), overlap
        # the one-window videos were decoded on the encode thread only with overlap decode; the still
        # (mode image) always decodes in the render loop
        on_thread = [name for name in decode_threads if name.startswith("encode")]
        assert len(on_thread) == (VIDEOS if overlap == "decode" else 0), overlap
        assert len(decode_threads) == VIDEOS + 1
        assert _decoded_on_thread(rows) == [False] + [overlap == "decode"] * VIDEOS


@pytest.mark.ray
@pytest.mark.usefixtures("session_ray")
def test_a_ray_actor_overlaps_decode_and_encode_with_the_next_render_and_writes_identical_files(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    """Compared with a sequential Ray run: a Ray actor renders with its own thread count, so a local run
    is not a bit-exact reference (float reductions differ), but the same engine must be."""
    manifest = write_manifest(tmp_path / "m", JOBS)
    outputs = tmp_path / "outputs"
    for name, mode in (("seq", "off"), ("decode", "decode")):
        app = app_factory(
            f"manifest={manifest}",
            f"output.run_name={name}",
            "engine=ray",
            "engine.num_workers=1",
            f"output.overlap={mode}",
        )
        assert run(app, REPO_ROOT) == 0
    rows = _same_files(outputs / "seq", outputs / "decode", "Ray decode")
    assert set(rows.worker) == {"ray-0"}  # one actor, two calls in flight
    started = rows.sort_values("started_at")  # a job was dispatched before the previous one was recorded
    assert (started.started_at.iloc[1:].to_numpy() < started.finished_at.iloc[:-1].to_numpy()).any()
    assert _decoded_on_thread(rows) == [False] + [True] * VIDEOS  # the still decodes in line
