"""Engine and output settings the typed config cannot rule out, checked before Ray or a model is touched."""

from __future__ import annotations

from ltx2_batch.config import EngineConfig, EngineKind, OutputConfig
from ltx2_batch.errors import ConfigError
from ltx2_batch.runners.cluster import cluster_address, unreachable


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
    """Also, for engine=ray, that the cluster to join (engine.address or $RAY_ADDRESS) answers: before any
    ledger row is written or model loaded, and within seconds."""
    problems = engine_problems(engine)
    if engine.kind is EngineKind.ray and not problems:
        problem = unreachable(cluster_address(engine))  # cluster_address raises for a malformed address
        if problem:
            problems.append(problem)
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
