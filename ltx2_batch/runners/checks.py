"""Engine and output settings the typed config cannot rule out, checked before Ray or a model is touched."""

from __future__ import annotations

import os
from pathlib import Path

from ltx2_batch.config import EngineConfig, OutputConfig
from ltx2_batch.errors import ConfigError
from ltx2_batch.layout import RUN_FOLDERS


def engine_problems(engine: EngineConfig) -> list[str]:
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
    for name in ("num_cpus", "num_gpus"):
        value = getattr(engine, name)
        if value is not None and value < 0:
            problems.append(f"engine.{name} must be >= 0, got {value}")
    return problems


def check_engine(engine: EngineConfig) -> None:
    problems = engine_problems(engine)
    if problems:
        raise ConfigError("invalid engine config:\n  " + "\n  ".join(problems))


def check_output(output: OutputConfig) -> None:
    """A decode on the encode thread needs that thread: asking for it while forbidding the thread is a
    contradiction we refuse rather than settle silently."""
    if output.overlap_decode and output.overlap_encode is False:
        raise ConfigError(
            "output.overlap_decode=true runs the decode on the encode thread, but "
            "output.overlap_encode=false forbids that thread: drop one of them (null = auto: on for CUDA)"
        )


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
        if os.path.islink(folder) or not _inside(real, real_dir):
            raise ConfigError(
                f"{folder} is a symlink (to {real}); a run writes only real folders inside its output dir: "
                f"remove the link (move what it points to into {output_dir} if you need it)"
            )
