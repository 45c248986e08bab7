"""The committed manifests and manifest name resolution (the manifest core's import boundary, no torch,
Ray or Hydra, is a rule of tests/unit/test_import_graph.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import PipelineKind, RenderMode
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.load import open_manifest, resolve_manifest_path
from ltx2_batch.manifest.select import WeightsOffer, chunk_count, has_effect
from tests.manifests import manifest_jobs

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = BUNDLED_MANIFESTS


def test_demo_is_small_and_covers_each_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    stream = open_manifest(
        MANIFESTS / "demo.yaml", chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="fp"
    )
    demo = tuple(stream.iter_jobs())
    jobs = {j.name: j for j in demo}
    assert 3 <= len(jobs) <= 5
    assert {"sunrise__seed=1", "sunrise__seed=2"} <= set(jobs)
    assert jobs["orange_disc"].images[0].sha256
    assert jobs["long_walk"].mode is RenderMode.CHAINED
    assert chunk_count(jobs["long_walk"].num_frames, 121, 24) == 2
    assert jobs["still_life"].mode is RenderMode.IMAGE
    # keep the demo cheap: tiny frames, few pixels overall
    assert all(j.width * j.height <= 128 * 64 for j in demo)
    assert sum(j.num_frames * j.width * j.height for j in demo) <= 64 * 64 * 250
    assert len(stream.sha256) == 64


def test_examplesmanifest_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    sweep = manifest_jobs(MANIFESTS / "examples" / "sweep.yaml")
    assert len(sweep) == 8
    header = (MANIFESTS / "examples" / "sweep.yaml").read_text()
    for name in (
        "lighthouse__seed=1__storm",
        "forest__seed=1__spatial=true",
        "forest__seed=2__spatial=false",
    ):
        assert name in {j.name for j in sweep} and name in header  # the names its header gives are real
    keyframe = manifest_jobs(MANIFESTS / "examples" / "keyframe.yaml")
    assert keyframe[0].pipeline is PipelineKind.KEYFRAME
    assert [im.frame_idx for im in keyframe[0].images] == [0, 16]


@pytest.mark.parametrize("name", ["demo", "examples/sweep", "examples/keyframe", "examples/storyboard"])
def test_bundled_manifests_set_only_fields_their_recipe_uses(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """On the default model (a distilled checkpoint) every field a bundled manifest sets is used by the
    recipe its jobs resolve to on that checkpoint (`select.has_effect`): an example teaches only what has an
    effect."""
    monkeypatch.chdir(REPO)
    path = MANIFESTS / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    jobs = manifest_jobs(path, weights=WeightsOffer(CheckpointKind.distilled))
    entries = [shot for scene in doc.get("scenes", []) for shot in scene["shots"]] or doc["jobs"]
    swept = {key for block in (doc.get("sweep") or {}).values() for key in block}
    for entry in entries:
        fields = {*doc.get("defaults", {}), *entry, *swept}
        fields |= {key for block in (entry.get("sweep") or {}).values() for key in block}
        prefix = entry.get("name", "")
        for job in (j for j in jobs if j.name.startswith(prefix)):
            unused = {f for f in fields if not has_effect(f, job.pipeline, CheckpointKind.distilled)}
            assert not unused, f"{name}: {job.name} ({job.pipeline.value}) sets {sorted(unused)}"


def test_resolve_manifest_path(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text("jobs: []")
    (tmp_path / "other.yml").write_text("jobs: []")
    assert resolve_manifest_path("demo", tmp_path) == tmp_path / "demo.yaml"
    assert resolve_manifest_path("other", tmp_path) == tmp_path / "other.yml"
    assert resolve_manifest_path(str(tmp_path / "demo.yaml"), Path("/nonexistent")) == tmp_path / "demo.yaml"
    with pytest.raises(ManifestError, match="did you mean 'demo'"):
        resolve_manifest_path("dmeo", tmp_path)
    with pytest.raises(ManifestError, match="no manifest file found"):
        resolve_manifest_path("sub/missing.yaml", tmp_path)


def test_unreadable_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        manifest_jobs(tmp_path / "absent.yaml")
