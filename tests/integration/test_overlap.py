"""output.overlap=encode|decode: job n's files (and decode) beside job n+1's render, same bytes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, AppFactory, start_test_ray, write_manifest

pytestmark = pytest.mark.slow

SWEEP = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - name: sweep
    prompt: "A cat walks on a sunny street, soft piano music."
    sweep: {grid: {seed: [1, 2, 3]}}
  - name: still
    prompt: "A red apple on a table."
    width: 128
    num_frames: 1
    seed: 4
  - name: longer
    prompt: "A drone shot of mountains at sunset with wind noise."
    num_frames: 17
    seed: 5
"""


def _rows(out: Path) -> pd.DataFrame:
    table = pq.read_table(out / "ledger.parquet").to_pandas()
    return table[(table.row_kind == "job") & (table.status != "running")].set_index("job_id")


def _files(out: Path) -> dict[str, bytes]:
    return {
        f"{folder}/{p.name}": p.read_bytes()
        for folder in ("generated", "thumbnails")
        for p in sorted((out / folder).iterdir())
    }


@pytest.mark.parametrize("overlap", ["encode", "decode"])
def test_overlapped_and_sequential_runs_write_identical_files(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch, overlap: str
) -> None:
    """encode: MP4s written on the encode thread; decode: the VAE/audio decode runs there too,
    beside the next job's denoise. Either way every file equals the sequential run's, byte for byte."""
    from ltx2_batch.backends.factory import adapter

    Ltx2Backend = adapter()  # noqa: N806 - the class, patched for this test

    decode_threads: list[str] = []
    real_decode = Ltx2Backend._decode

    def recording_decode(self: Ltx2Backend, state: object) -> object:
        decode_threads.append(threading.current_thread().name)
        return real_decode(self, state)

    monkeypatch.setattr(Ltx2Backend, "_decode", recording_decode)
    manifest = write_manifest(tmp_path / "m", SWEEP)
    seq_out = tmp_path / "outputs" / "seq"
    ovl_out = tmp_path / "outputs" / "ovl"
    off = ("output.overlap=off",)  # explicit: a CUDA host too
    assert run(app_factory(f"manifest={manifest}", "output.run_name=seq", *off), REPO_ROOT) == 0
    assert decode_threads and all(name == "MainThread" for name in decode_threads)
    decode_threads.clear()

    encode_threads: set[str] = set()
    from ltx2_batch.media import write as media_write

    real_write_mp4 = media_write.write_mp4

    def recording_write_mp4(*args: object, **kwargs: object) -> object:
        encode_threads.add(threading.current_thread().name)
        return real_write_mp4(*args, **kwargs)

    import ltx2_batch.worker.job_files as job_files_module

    # records which thread encodes; the real encoder runs
    monkeypatch.setattr(job_files_module, "write_mp4", recording_write_mp4)
    app = app_factory(f"manifest={manifest}", "output.run_name=ovl", f"output.overlap={overlap}")
    assert run(app, REPO_ROOT) == 0

    seq_rows, ovl_rows = _rows(seq_out), _rows(ovl_out)
    assert set(seq_rows.index) == set(ovl_rows.index)
    assert (ovl_rows.status == "done").all() and len(ovl_rows) == 5
    seq_files, ovl_files = _files(seq_out), _files(ovl_out)
    assert len(seq_files) == 10  # 4 MP4 + 1 PNG, 5 thumbnails
    assert seq_files.keys() == ovl_files.keys()
    for name, data in seq_files.items():
        assert ovl_files[name] == data, f"{name} differs between the sequential and the overlapped run"
    # the MP4s of the overlapped run were written by the encode thread, not the render loop
    assert encode_threads and all(name.startswith("encode") for name in encode_threads)
    # the one-window videos were decoded on the encode thread only with overlap_decode; the image job
    # (mode image) always decodes in the render loop
    on_thread = [name for name in decode_threads if name.startswith("encode")]
    assert len(on_thread) == (4 if overlap == "decode" else 0)
    assert len(decode_threads) == 5
    sidecars = [json.loads(Path(p).read_text()) for p in ovl_rows.sidecar_path]
    overlapped = sorted(sc["backend"]["decode_overlapped"] for sc in sidecars)
    assert overlapped == ([False, True, True, True, True] if overlap == "decode" else [False] * 5)
    # each outcome is reported complete: its sidecar (written last) exists
    assert all(Path(p).is_file() for p in ovl_rows.sidecar_path)


@pytest.mark.ray
@pytest.mark.parametrize("overlap", ["encode", "decode"])
def test_ray_actor_overlaps_encode_with_the_next_render_and_writes_identical_files(
    tmp_path: Path, app_factory: AppFactory, overlap: str
) -> None:
    """Compared with a sequential Ray run: a Ray actor renders with its own thread count, so a local run
    is not a bit-exact reference (float reductions differ), but the same engine must be."""
    import ray

    manifest = write_manifest(tmp_path / "m", SWEEP)
    start_test_ray(num_cpus=3, num_gpus=1)
    try:
        for name, mode in (("seq", "off"), ("ovl", overlap)):
            app = app_factory(
                f"manifest={manifest}", f"output.run_name={name}", "engine=ray", f"output.overlap={mode}"
            )
            assert run(app, REPO_ROOT) == 0
    finally:
        ray.shutdown()
    rows = _rows(tmp_path / "outputs" / "ovl")
    assert (rows.status == "done").all() and len(rows) == 5
    assert set(rows.worker) == {"ray-0"}  # one actor, two calls in flight
    started = rows.sort_values("started_at")  # a job was dispatched before the previous one was recorded
    assert (started.started_at.iloc[1:].to_numpy() < started.finished_at.iloc[:-1].to_numpy()).any()
    seq_files, ovl_files = _files(tmp_path / "outputs" / "seq"), _files(tmp_path / "outputs" / "ovl")
    assert len(seq_files) == 10 and seq_files.keys() == ovl_files.keys()
    for name, data in seq_files.items():
        assert ovl_files[name] == data, name
    decoded_on_thread = [
        json.loads(Path(p).read_text())["backend"]["decode_overlapped"] for p in rows.sidecar_path
    ]
    assert sum(decoded_on_thread) == (4 if overlap == "decode" else 0)  # the image job decodes in line
