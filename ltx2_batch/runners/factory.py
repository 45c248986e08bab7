"""How a worker builds its executor: a cheap, picklable spec on the driver, the heavy runtime in the worker.

The spec holds only plain dataclasses and strings (no DictConfig, no tensors), so it crosses into a Ray
actor unchanged; `build_executor` runs inside the worker and is the only place a backend is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx2_batch.backends.factory import create_backend  # cheap: torch is imported when a backend is made
from ltx2_batch.config import ModelConfig, OutputConfig
from ltx2_batch.execute import JobExecutor, WorkerIdentity
from ltx2_batch.layout import OutputLayout


@dataclass(frozen=True)
class ExecutorSpec:
    model: ModelConfig
    output: OutputConfig
    project_root: str
    output_dir: str
    run_info: dict[str, Any] = field(default_factory=dict)


def build_executor(spec: ExecutorSpec, worker_name: str, node: str | None = None) -> JobExecutor:
    backend = create_backend(spec.model, Path(spec.project_root))
    output = spec.output.resolved(cuda=str(getattr(backend, "device", "cpu")).startswith("cuda"))
    return JobExecutor(
        backend=backend,
        layout=OutputLayout(Path(spec.output_dir)),
        identity=WorkerIdentity(worker_name, node) if node else WorkerIdentity.here(worker_name),
        run_info=spec.run_info,
        video_crf=output.video_crf,
        thumbnail_width=output.thumbnail_width,
        keep_chunk_frames=output.keep_chunk_frames,
        overlap_encode=output.overlaps,
        overlap_decode=bool(output.overlap_decode),
        adaptive_decode=spec.output.overlap_decode is None,  # auto: per job, whichever cycle is shorter
    )
