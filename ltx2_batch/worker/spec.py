"""How a worker builds its executor: a cheap, picklable spec on the driver, the heavy runtime in the worker.

The spec holds only plain dataclasses and strings (no DictConfig, no tensors), so it crosses into a Ray
actor unchanged; `build_executor` runs inside the worker and is the only place a backend is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltx2_batch.backends.factory import create_backend  # cheap: torch is imported when a backend is made
from ltx2_batch.config import ModelConfig, OutputConfig, VerifyMode
from ltx2_batch.core.outcome import WorkerIdentity
from ltx2_batch.ledger.schema import RunContext
from ltx2_batch.media.probe import VideoCount
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.worker.executor import JobExecutor
from ltx2_batch.worker.job_files import JobFiles
from ltx2_batch.worker.overlap import settle


@dataclass(frozen=True)
class ExecutorSpec:
    model: ModelConfig
    output: OutputConfig
    project_root: str
    output_dir: str
    run: RunContext
    verify: VerifyMode = VerifyMode.cheap  # `full` also decodes every file it writes to count its frames


def build_executor(spec: ExecutorSpec, worker_name: str, node: str | None = None) -> JobExecutor:
    backend = create_backend(spec.model, Path(spec.project_root))
    cuda = str(getattr(backend, "device", "cpu")).startswith("cuda")
    files = JobFiles(
        layout=OutputLayout(Path(spec.output_dir)),
        run_fields=spec.run.sidecar_fields(),
        video_crf=spec.output.video_crf,
        thumbnail_width=spec.output.thumbnail_width,
        count=VideoCount.decode if spec.verify is VerifyMode.full else VideoCount.packets,
    )
    return JobExecutor(
        backend=backend,
        files=files,
        identity=WorkerIdentity(worker_name, node) if node else WorkerIdentity.here(worker_name),
        overlap=settle(spec.output.overlap, cuda=cuda),
        keep_chunks=spec.output.keep_chunks,
    )
