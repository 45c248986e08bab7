"""Engine and output settings the typed config cannot rule out, checked before Ray or a model is touched."""

from __future__ import annotations

from ltx2_batch.config import EngineConfig, OutputConfig
from ltx2_batch.errors import ConfigError


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
    """Output settings an encode would only refuse after rendering."""
    problems = []
    if not 0 <= output.video_crf <= 51:
        problems.append(
            f"output.video_crf must be 0..51 (libx264; 18 is visually lossless), got {output.video_crf}"
        )
    if output.thumbnail_width < 1:
        problems.append(f"output.thumbnail_width must be >= 1, got {output.thumbnail_width}")
    if problems:
        raise ConfigError("invalid output config:\n  " + "\n  ".join(problems))
