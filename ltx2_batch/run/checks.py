"""Settings the typed config cannot rule out, checked before Ray, a ledger row or a model is touched.

`check_settings` reports every bad setting of a launch at once (each message names the setting, the value
and a value that works); `check_engine` / `check_output` are the engine and output parts the driver calls
again before it runs (the engine part also probes the cluster to join).
Must not: import torch, Ray or Hydra, create folders, or settle auto values (workers do that).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from enum import Enum
from pathlib import Path

from ltx2_batch.backends.quantize import setting_problems as quantize_problems
from ltx2_batch.config import AppConfig, EngineConfig, EngineKind, LimitsConfig, ModelConfig, OutputConfig
from ltx2_batch.errors import ConfigError
from ltx2_batch.runners.cluster import cluster_address, unreachable
from ltx2_batch.runners.pool_key import check_pool_name
from ltx2_batch.storage.layout import RUN_FOLDERS
from ltx2_batch.storage.location import is_url, location_problem

MIN_PART_MB = 5  # S3's smallest multipart part (all but the last)
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for a `ray job submit` entrypoint
CRF_RANGE = (0, 51)  # libx264's constant-rate-factor scale (8-bit)
DTYPES = ("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def engine_problems(engine: EngineConfig) -> list[str]:
    """Every bad `engine.*` setting, each naming a value that works; no network (check_engine probes)."""
    problems = []
    if engine.num_workers is not None and engine.num_workers < 1:
        problems.append(f"engine.num_workers must be >= 1 (or null: one per GPU), got {engine.num_workers}")
    if engine.gpus_per_worker < 0:
        problems.append(f"engine.gpus_per_worker must be >= 0, got {engine.gpus_per_worker}")
    if engine.gpus_per_worker == 0 and engine.num_workers is None:
        problems.append(
            "engine.gpus_per_worker=0 (CPU actors) needs engine.num_workers, e.g. engine.num_workers=2"
        )
    if engine.cpus_per_worker <= 0:
        problems.append(f"engine.cpus_per_worker must be > 0, got {engine.cpus_per_worker}")
    if engine.max_attempts < 1:
        problems.append(f"engine.max_attempts must be >= 1, got {engine.max_attempts}")
    if engine.start_timeout_s <= 0:
        problems.append(f"engine.start_timeout_s must be > 0 seconds, got {engine.start_timeout_s}")
    for name in ("num_cpus", "num_gpus"):
        value = getattr(engine, name)
        if value is not None and value < 0:
            problems.append(f"engine.{name} must be >= 0, got {value}")
    if engine.kind is EngineKind.ray:
        try:
            cluster_address(engine)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems + pool_problems(engine)


def pool_problems(engine: EngineConfig) -> list[str]:
    """Bad warm-pool settings: a pool needs engine=ray and a valid name; an idle timeout must be positive."""
    problems = []
    if engine.pool is not None:
        if engine.kind is not EngineKind.ray:
            problems.append(f"engine.pool={engine.pool} keeps Ray actors warm: it needs engine=ray")
        try:
            check_pool_name(engine.pool)
        except ConfigError as exc:
            problems.append(str(exc))
    if engine.pool_idle_s is not None and engine.pool_idle_s <= 0:
        problems.append(
            f"engine.pool_idle_s must be > 0 seconds (or null: never), got {engine.pool_idle_s}: e.g. 900"
        )
    return problems


def output_problems(output: OutputConfig) -> list[str]:
    """Bad `output.*` values the schema allows: crf range, thumbnail width, run name, part size, lease, and
    credentials in the endpoint URL (they would land in config.yaml)."""
    problems = []
    low, high = CRF_RANGE
    if not low <= output.video_crf <= high:
        problems.append(
            f"output.video_crf={output.video_crf} is outside libx264's {low}..{high} (lower is better and "
            "bigger; 18 is near transparent, 23 is libx264's default): e.g. output.video_crf=18"
        )
    if output.thumbnail_width < 1:
        problems.append(f"output.thumbnail_width must be >= 1 pixel, got {output.thumbnail_width}: e.g. 320")
    if output.run_name is not None and (
        not output.run_name.strip() or output.run_name in (".", "..") or re.search(r"[/\\]", output.run_name)
    ):
        problems.append(
            f"output.run_name={output.run_name!r} must be a plain folder name (no '/', not '.' or '..'); "
            "put folders in output.root instead"
        )
    if output.upload_part_mb < MIN_PART_MB:
        problems.append(
            f"output.upload_part_mb={output.upload_part_mb}: object stores take multipart parts of at least "
            f"{MIN_PART_MB} MB: e.g. output.upload_part_mb=16"
        )
    if output.lease_ttl_s <= 0:
        problems.append(f"output.lease_ttl_s must be > 0 seconds, got {output.lease_ttl_s}: e.g. 60")
    if output.endpoint_url is not None and "@" in output.endpoint_url:
        problems.append(
            "output.endpoint_url holds credentials (user:password@): they would be written to config.yaml; "
            "give them through the environment or a profile"
        )
    return problems


class FolderUse(Enum):
    """How a folder setting is used, which decides what is checked about it."""

    written = "written"  # created if absent: the folder it goes in must be writable
    read = "read"  # may be absent (nothing found there then)
    read_required = "read_required"  # must exist


def _path_problems(setting: str, value: str | None, root: Path, use: FolderUse) -> list[str]:
    """A folder setting: refused when it names a file, when it must exist and does not, or when a folder
    to be written cannot be (or would vanish with Ray's copy of a job's working dir). A URL is checked
    without the network (scheme, package, no credentials in it): its folder is made by the first write."""
    if not value:
        return []
    if is_url(value) and use is not FolderUse.written:
        return [f"{setting}={value}: only output.root and export.dir may be on object storage; give a folder"]
    if is_url(value):
        return [p for p in (location_problem(setting, value),) if p]
    path = Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    problem = _inside_ray_job_copy(setting, value, path, root) if use is FolderUse.written else None
    if problem is None and path.exists() and not path.is_dir():
        problem = f"{setting}={value} is a file ({path}); give a folder"
    elif problem is None and use is FolderUse.read_required and not path.is_dir():
        problem = f"{setting}={value} does not exist ({path}): create it or drop it"
    elif problem is None and use is FolderUse.written:
        unwritable = _unwritable(path)
        if unwritable:
            problem = f"{setting}={value}: cannot write there ({unwritable}); choose a folder you can write"
    return [problem] if problem else []


def _inside_ray_job_copy(setting: str, value: str, path: Path, root: Path) -> str | None:
    """Under `ray job submit` the launch directory is Ray's temporary copy of the job's working dir, deleted
    when the job ends: a folder written inside it would vanish with it."""
    if RAY_JOB_ENV not in os.environ or "runtime_resources" not in root.parts:
        return None
    if not _inside(os.path.realpath(path), os.path.realpath(root)):
        return None
    return (
        f"{setting}={value} resolves to {path}, inside the copy of the working dir Ray made for this job, "
        f"which is deleted when the job ends: give an absolute folder every node shares or a bucket "
        f"(e.g. {setting}=s3://my-bucket/runs)"
    )


def _unwritable(path: Path) -> str | None:
    """Why a file cannot be created in `path`, found by trying: the missing folders are made and a probe
    file written and removed, then the folders made are removed again (permission bits cannot tell: root
    passes `os.access` on /proc and on a read-only mount)."""
    made: list[Path] = []
    try:
        for folder in reversed([p for p in (path, *path.parents) if not p.exists()]):
            folder.mkdir()
            made.append(folder)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".ltx2-batch-probe-")
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        return f"{exc.strerror or exc}: {exc.filename or path}"
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return None


def model_problems(model: ModelConfig) -> list[str]:
    """Bad `model.*` values: device and dtype spellings, the prompt cache size, and the quantization rules."""
    problems = []
    if not _DEVICE.match(model.device):
        problems.append(f"model.device={model.device!r}: expected auto, cpu, cuda, cuda:N or mps")
    if model.dtype not in DTYPES:
        problems.append(f"model.dtype={model.dtype!r}: expected auto, bf16, fp16 or fp32")
    if model.prompt_cache_size < 0:
        problems.append(f"model.prompt_cache_size must be >= 0 (0: no cache), got {model.prompt_cache_size}")
    return problems + quantize_problems(model)


def chaining_problems(app: AppConfig) -> list[str]:
    """The chunk arithmetic's own refusals, asked up front (a manifest with no long job would never ask)."""
    from ltx2_batch.chaining.plan import plan_chunks
    from ltx2_batch.core.families import check_chunk_frames, spec
    from ltx2_batch.manifest.select import LTX2_TEMPORAL_SCALE

    chaining = app.chaining.with_window(spec(app.model.family).window_frames)
    problem = check_chunk_frames(app.model.family, chaining.window)
    if problem is not None:
        return [f"chaining.chunk_frames={chaining.window} with model={app.model.name}: {problem}"]
    try:
        plan = plan_chunks(2 * chaining.window, chaining.window, chaining.overlap_frames, LTX2_TEMPORAL_SCALE)
    except ConfigError as exc:
        return [str(exc)]
    handed = plan.alignment.latent_slice_count
    if not 0 <= chaining.blend < handed:
        return [
            f"chaining.blend must be 0..{handed - 1} (of the {handed} handed-off latent frames the first "
            f"stays clean), got {chaining.blend}: e.g. chaining.blend=2"
        ]
    return []


def limits_problems(limits: LimitsConfig) -> list[str]:
    """Every maximum must admit something: `limits.max_jobs=0` would refuse every manifest, and the
    refusal would blame a job's fields rather than the setting."""
    return [
        f"limits.{f.name} must be > 0 (it is a maximum), got {getattr(limits, f.name)}: e.g. "
        f"limits.{f.name}={f.default}"
        if f.name == "max_frame_rate"
        else f"limits.{f.name} must be >= 1 (it is a maximum), got {getattr(limits, f.name)}: e.g. "
        f"limits.{f.name}={f.default}"
        for f in dataclasses.fields(limits)
        if getattr(limits, f.name) <= 0
    ]


def settings_problems(app: AppConfig, root: Path) -> list[str]:
    """Every setting of `app` that cannot work, launched from `root`."""
    problems = [*engine_problems(app.engine), *output_problems(app.output), *model_problems(app.model)]
    problems += limits_problems(app.limits)
    problems += chaining_problems(app)
    problems += _path_problems("output.root", app.output.root, root, FolderUse.written)
    problems += _path_problems("export.dir", app.export.dir, root, FolderUse.written)
    problems += _path_problems("paths.projects_root", app.paths.projects_root, root, FolderUse.read)
    problems += _path_problems("model.root", app.model.root, root, FolderUse.read)
    for i, extra in enumerate(app.paths.allowed_roots):
        problems += _path_problems(f"paths.allowed_roots[{i}]", extra, root, FolderUse.read_required)
    if app.export.samples_per_shard < 1:
        problems.append(f"export.samples_per_shard must be >= 1, got {app.export.samples_per_shard}")
    if app.batch_jobs < 1:
        problems.append(f"batch_jobs must be >= 1, got {app.batch_jobs}: e.g. batch_jobs=10000")
    if app.shard is not None:
        from ltx2_batch.core.shard import Shard

        try:
            Shard.parse(app.shard)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def check_settings(app: AppConfig, root: Path, *, device: bool = False) -> None:
    """Every bad setting at once (ConfigError). With `device`, also what this machine's device cannot run,
    when the driver renders itself (engine=local) and the model settings are otherwise sound: that check
    imports torch, so the CLI asks for it and the pure settings tests do not."""
    problems = settings_problems(app, root)
    if device and app.engine.kind is EngineKind.local and not model_problems(app.model):
        from ltx2_batch.backends.factory import placement_problems

        problems += placement_problems(app.model)
    if problems:
        raise ConfigError(f"{len(problems)} invalid setting(s):\n  " + "\n  ".join(problems))


def check_engine(engine: EngineConfig) -> None:
    """Also, for engine=ray, that the cluster to join (engine.address or $RAY_ADDRESS) answers: before any
    ledger row is written or model loaded, and within seconds."""
    problems = engine_problems(engine)
    if engine.kind is EngineKind.ray and not problems:
        problem = unreachable(cluster_address(engine))
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError("invalid engine config:\n  " + "\n  ".join(problems))


def check_output(output: OutputConfig) -> None:
    """ConfigError listing every `output_problems`, before the driver runs."""
    problems = output_problems(output)
    if problems:
        raise ConfigError("invalid output config:\n  " + "\n  ".join(problems))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_output_dir(root: Path, output_dir: Path) -> None:
    """Every folder a run writes must really lie inside `output.root` once symlinks are followed.

    `output.root` itself may be a link (outputs on another disk); the run's own dir and its folders
    (`generated/`, `metadata/`, ...) may not lead elsewhere, or a run would write, and `force=true` delete,
    files outside the root.
    """
    real_root = os.path.realpath(root)
    real_dir = os.path.realpath(output_dir)
    if not _inside(real_dir, real_root) or real_dir == real_root:
        raise ConfigError(
            f"output dir {output_dir} resolves to {real_dir}, outside output.root ({real_root}); "
            "remove the symlink or choose another output.run_name"
        )
    for name in RUN_FOLDERS:
        folder = output_dir / name
        real = os.path.realpath(folder)
        if os.path.islink(folder) or not _inside(real, real_dir):  # noqa: PTH114 - False, not OSError, for a name too long
            raise ConfigError(
                f"{folder} is a symlink (to {real}); a run writes only real folders inside its output dir: "
                f"remove the link (move what it points to into {output_dir} if you need it)"
            )
