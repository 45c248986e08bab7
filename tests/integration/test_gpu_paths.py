"""The CUDA paths the CPU suite cannot reach (skipped without a GPU): the overlapped decode on the backend's
side stream, ordered after the denoise by an event, writes the same MP4 bytes as the decode in line, on the
tiny model in bf16. Run on a GPU machine with `pytest -m gpu`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ltx2_batch.backends.factory import create_backend
from ltx2_batch.backends.tiny import ensure_tiny_models
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, UpscaleSpec, with_job_id
from ltx2_batch.core.outcome import WorkerIdentity
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.worker.executor import JobExecutor, RunOutput
from ltx2_batch.worker.job_files import JobFiles
from ltx2_batch.worker.overlap import Overlap

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _jobs() -> list[RenderJob]:
    jobs = []
    for seed, two_stage in ((1, False), (2, True), (3, False), (4, True)):
        job = RenderJob(
            name=f"gpu-{seed}",
            prompt="A cat walks on a sunny street, soft piano music.",
            width=128,
            height=128,
            num_frames=17,
            frame_rate=24.0,
            seed=seed,
            pipeline=PipelineKind.DISTILLED,
            mode=RenderMode.VIDEO,
            upscale=UpscaleSpec(spatial=two_stage),
        )
        jobs.append(with_job_id(job, f"gpu-{seed}-{two_stage}"))
    return jobs


def _run(root: Path, out: Path, overlap_decode: bool) -> list[dict]:
    cfg = ModelConfig(root=str(root), dtype="bf16")
    backend = create_backend(cfg, Path(__file__).resolve().parents[2])
    assert backend.device.type == "cuda"
    executor = JobExecutor(backend, WorkerIdentity("gpu-test", "local"))
    files = RunOutput(
        JobFiles(OutputLayout(out), {}), overlap=Overlap.DECODE if overlap_decode else Overlap.ENCODE
    )
    try:
        futures = [executor.submit(job, files) for job in _jobs()]
        outcomes = [f.result() for f in futures]
    finally:
        executor.close()
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    return [
        {
            "mp4": Path(o.output_path).read_bytes(),
            "sidecar": json.loads(Path(o.sidecar_path).read_text()),
        }
        for o in outcomes
    ]


def test_overlapped_decode_on_the_side_stream_writes_the_inline_bytes(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    ensure_tiny_models(root)
    inline = _run(root, tmp_path / "inline", overlap_decode=False)
    overlapped = _run(root, tmp_path / "overlapped", overlap_decode=True)
    assert [r["sidecar"]["backend"]["decode_overlapped"] for r in inline] == [False] * 4
    assert [r["sidecar"]["backend"]["decode_overlapped"] for r in overlapped] == [True] * 4
    for a, b in zip(inline, overlapped, strict=True):
        assert a["mp4"] == b["mp4"], a["sidecar"]["name"]
