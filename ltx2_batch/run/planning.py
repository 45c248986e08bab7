"""From config to jobs: the validated manifest, this shard's jobs, where outputs go, what the weights serve.

Everything here runs before any model work (`plan=true` stops after it, run/preview.py). Loads no model:
the model fingerprint and what the weights serve are read from file names and headers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ltx2_batch.backends.lora_check import LoraCheck
from ltx2_batch.backends.models import discover_model_files, embedded_builder, embedded_root, model_root
from ltx2_batch.backends.weights import model_fingerprint
from ltx2_batch.config import AppConfig, ChainingConfig, ModelConfig, ModelSource, OutputConfig
from ltx2_batch.core.families import CheckpointKind, ModelFamily, check_chunk_frames, kind_from_name, spec
from ltx2_batch.core.jobs import RenderJob, RenderMode
from ltx2_batch.core.shard import Shard
from ltx2_batch.errors import ConfigError
from ltx2_batch.manifest.limits import limits_from
from ltx2_batch.manifest.load import open_manifest
from ltx2_batch.manifest.select import WeightsOffer
from ltx2_batch.manifest.select import chunk_count as count_chunks
from ltx2_batch.manifest.stream import ManifestStream
from ltx2_batch.run.checks import check_output_dir
from ltx2_batch.run.rundir import LocalRunDir, RunDir
from ltx2_batch.storage.layout import run_name_problem
from ltx2_batch.storage.location import Location, location_problem, parse_location


def run_location(cfg: AppConfig, manifest_path: Path, project_root: Path) -> Location:
    """`<output.root>/<run name>`: a local folder (refused, ConfigError, unless it is a real folder inside
    the root) or a URL below a bucket's `output.root` (never turned into a local folder)."""
    problem = location_problem("output.root", cfg.output.root)
    if problem:
        raise ConfigError(problem)
    root = parse_location(cfg.output.root, project_root)
    name = cfg.output.run_name or manifest_path.stem
    problem = run_name_problem(name)
    if problem:
        where = (
            "output.run_name" if cfg.output.run_name else f"the manifest's file stem ({manifest_path.name})"
        )
        raise ConfigError(f"run name from {where} {problem}; set output.run_name=<one folder name>")
    output_dir = root.child(name)
    if not output_dir.remote:
        check_output_dir(root.path, output_dir.path)
    return output_dir


def output_dir_for(cfg: AppConfig, manifest_path: Path, project_root: Path) -> Path:
    """`run_location` for a local output.root (ConfigError for a URL: use run_location)."""
    location = run_location(cfg, manifest_path, project_root)
    if location.remote:
        raise ConfigError(f"output dir {location.text} is on object storage, not a local folder")
    return location.path


def open_run_dir(location: Location, output: OutputConfig) -> RunDir:
    """The RunDir for `location`: a local folder, or a bucket (URL)."""
    if location.remote:
        from ltx2_batch.run.bucket import BucketRunDir

        return BucketRunDir(location, output)
    return LocalRunDir(location.path)


def open_jobs(
    cfg: AppConfig, project_root: Path, manifest_path: Path
) -> tuple[ManifestStream, Iterator[RenderJob], Location]:
    """The validated manifest, this shard's jobs (produced lazily) and the output dir."""
    stream = open_manifest(
        manifest_path,
        chaining=family_chaining(cfg.chaining, cfg.model),
        paths=cfg.paths,
        model_fingerprint=model_fingerprint(cfg.model, project_root),
        seed_override=cfg.seed,
        limits=limits_from(cfg.limits),
        weights=weights_offer(cfg.model, project_root),
    )
    shard = Shard.parse(cfg.shard) if cfg.shard else None
    return stream, stream.iter_jobs(shard), run_location(cfg, manifest_path, project_root)


def weights_offer(model: ModelConfig, project_root: Path) -> WeightsOffer:
    """What `model`'s files serve (`_served`), and where a manifest's LoRA paths are also looked for: the
    model's root (model.root, else the models home), never the launch directory."""
    return replace(_served(model, project_root), models_root=str(model_root(model, project_root)))


def _served(model: ModelConfig, project_root: Path) -> WeightsOffer:
    """What `model`'s files serve, from the preset, file names and headers only (no weights read): the
    embedded and random sets are distilled unless the config says otherwise (`model.checkpoint_kind`); real
    checkpoints are what their file name says (Lightricks' naming), else the config's kind, else dev. The
    embedded sets ship a distilled LoRA, the random sets none; real files count when they exist.

    LoRA files are checked against the checkpoint's transformer (backends/lora_check.py, both headers) where
    the driver can read it: real checkpoints, and an embedded set already built (a set the first run builds
    is checked in the worker, before its model loads). Not for `model=fake`, which has no transformer, nor
    the random sets, whose header-only checkpoints list no tensor."""
    if model.source is ModelSource.tiny:
        kind = model.checkpoint_kind or CheckpointKind.distilled
        x1_5 = model.family is ModelFamily.ltx23  # only the tiny23 set ships an x1.5 upsampler
        return WeightsOffer(
            kind,
            True,
            model.family,
            model.name,
            spatial_x1_5=x1_5,
            lora_check=_tiny_check(model, project_root),
        )
    if model.source is ModelSource.fake:  # renders every kind the embedded sets do
        return WeightsOffer(CheckpointKind.distilled, True, model.family, model.name, spatial_x1_5=True)
    if model.source is ModelSource.random:
        kind = model.checkpoint_kind or CheckpointKind.distilled
        return WeightsOffer(kind, False, model.family, model.name, spatial_x1_5=False)
    files = discover_model_files(model, project_root, allow_fp8=model.allow_fp8)
    named = kind_from_name(files.checkpoint.name) if files.checkpoint is not None else None
    kind = named or model.checkpoint_kind or CheckpointKind.dev
    lora = files.distilled_lora is not None
    missing = "" if lora else model.distilled_lora
    x1_5 = files.spatial_upsampler_x1_5 is not None
    check = LoraCheck(files.checkpoint) if files.checkpoint is not None else None
    return WeightsOffer(kind, lora, model.family, model.name, missing, spatial_x1_5=x1_5, lora_check=check)


def _tiny_check(model: ModelConfig, project_root: Path) -> LoraCheck | None:
    """The LoRA check against the embedded set's checkpoint, when the set is built (else the worker's)."""
    builder = embedded_builder(model.family)
    root = embedded_root(model, project_root)
    if not builder.is_built(root, seed=model.seed):
        return None
    return LoraCheck(root / builder.TINY_LAYOUT["checkpoint"])


def family_chaining(chaining: ChainingConfig, model: ModelConfig) -> ChainingConfig:
    """`chaining` with its window taken from the model's family when unset, and refused (ConfigError naming
    the field, the family's window and the fix) when it is set beyond that window or off the latent grid."""
    resolved = chaining.with_window(spec(model.family).window_frames)
    problem = check_chunk_frames(model.family, resolved.window)
    if problem is not None:
        raise ConfigError(f"chaining.chunk_frames={resolved.window} with model={model.name}: {problem}")
    return resolved


def chunk_count(job: RenderJob) -> int:
    """Pipeline calls `job` takes: its chunks when chained, else one."""
    if job.mode is not RenderMode.CHAINED:
        return 1
    return count_chunks(job.num_frames, job.chunking.chunk_frames, job.chunking.overlap_frames)
