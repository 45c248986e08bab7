"""What a worker is given: a cheap, picklable spec on the driver, the heavy runtime built in the worker.

Two specs, because they live for different times:
- `WorkerSpec`: what a worker loads and keeps for its whole life (the model, where its files are). A warm
  worker is defined by it: two launches with the same WorkerSpec can share it.
- `RunSpec`: where and how one launch writes (output dir: a path, or a bucket URL; output settings, the
  run's identity for the sidecars, the verify mode). It travels with each job, so one warm worker can serve
  launches into different output dirs, one after another or interleaved.
Both hold only plain dataclasses and strings (no DictConfig, no tensors), so they cross into a Ray actor
unchanged. `build_executor` runs inside the worker and is the only place a backend is created.
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
from ltx2_batch.storage.location import is_url
from ltx2_batch.storage.publish import Publisher
from ltx2_batch.worker.executor import JobExecutor, RunOutput
from ltx2_batch.worker.job_files import JobFiles
from ltx2_batch.worker.overlap import settle


@dataclass(frozen=True)
class WorkerSpec:
    """The model a worker holds (root settled on the driver: a worker's own environment may differ)."""

    model: ModelConfig
    project_root: str


@dataclass(frozen=True)
class RunSpec:
    """One launch's output: where, how, and under which run identity its jobs are written."""

    output: OutputConfig
    output_dir: str
    run: RunContext
    verify: VerifyMode = VerifyMode.cheap  # `full` also decodes every file it writes to count its frames


def build_executor(spec: WorkerSpec, worker_name: str, node: str | None = None) -> JobExecutor:
    """The worker's warm executor: builds the backend (the expensive part, once per worker)."""
    backend = create_backend(spec.model, Path(spec.project_root))
    identity = WorkerIdentity(worker_name, node) if node else WorkerIdentity.here(worker_name)
    return JobExecutor(backend=backend, identity=identity)


def run_output(run: RunSpec, cuda: bool) -> RunOutput:
    """What a worker on CUDA (or not) does with this launch's files: writer, overlap, chunk files. A run dir
    on object storage (`output_dir` is a URL) is written into this node's scratch copy of it and published
    from there (storage/publish.py); the scratch root is settled here, on the worker's own node."""
    publisher = None
    layout = OutputLayout(Path(run.output_dir))
    if is_url(run.output_dir):
        output = run.output
        publisher = Publisher.for_run(
            run.output_dir, output.endpoint_url, output.scratch, output.upload_part_mb
        )
        layout = publisher.layout
    files = JobFiles(
        layout=layout,
        run_fields=run.run.sidecar_fields(),
        video_crf=run.output.video_crf,
        thumbnail_width=run.output.thumbnail_width,
        count=VideoCount.decode if run.verify is VerifyMode.full else VideoCount.packets,
        checksums=publisher is not None,
    )
    overlap = settle(run.output.overlap, cuda=cuda)
    return RunOutput(files, overlap=overlap, keep_chunks=run.output.keep_chunks, publisher=publisher)


def renders_on_cuda(executor: JobExecutor) -> bool:
    """Whether the executor's backend renders on a CUDA device (what `output.overlap=auto` settles on)."""
    return str(getattr(executor.backend, "device", "cpu")).startswith("cuda")
