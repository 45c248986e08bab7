"""Loading a manifest in a test the way a run does: `open_manifest`, then every job `iter_jobs` yields.

Shared by the manifest tests so they go through the run path's API (prompt-file rows and storyboard
links included) rather than a test-only loader. A plain function with the run's defaults, not a fixture.
"""

from __future__ import annotations

from pathlib import Path

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.load import open_manifest
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer


def manifest_jobs(
    path: str | Path,
    *,
    chaining: ChainingConfig | None = None,
    paths: PathsConfig | None = None,
    model_fingerprint: str = "fp",
    seed_override: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    weights: WeightsOffer = ANY_WEIGHTS,
) -> tuple[RenderJob, ...]:
    """Every job of the manifest at `path`, each with its id; raises ManifestError as a run would."""
    stream = open_manifest(
        path,
        chaining=chaining or ChainingConfig(),
        paths=paths or PathsConfig(),
        model_fingerprint=model_fingerprint,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
    )
    return tuple(stream.iter_jobs())
