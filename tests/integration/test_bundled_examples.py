"""Every bundled manifest plans and renders on the default model's recipes (issue 26): a newcomer's first
commands work. Each runs through `cli.run` as a launch does; on `model=fake` (the default model's recipes,
numpy stand-in clips) except the keyframe example, which renders on the embedded tiny model itself."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, AppFactory

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("manifest", "model", "jobs"),
    [
        ("demo", "fake", 5),
        ("examples/sweep", "fake", 8),
        ("examples/storyboard", "fake", 4),
        ("examples/keyframe", "tiny", 1),
    ],
)
def test_a_bundled_manifest_plans_and_renders(
    tmp_path: Path, app_factory: AppFactory, manifest: str, model: str, jobs: int
) -> None:
    assert run(app_factory(f"manifest={manifest}", f"model={model}", "plan=true"), REPO_ROOT) == 0
    assert run(app_factory(f"manifest={manifest}", f"model={model}", "progress=false"), REPO_ROOT) == 0
    out = tmp_path / "outputs" / Path(manifest).name
    rows = pq.read_table(out / "ledger.parquet").to_pylist()
    done = [r for r in rows if r["row_kind"] == "job" and r["status"] == "done"]
    assert len(done) == jobs and all(Path(r["output_path"]).is_file() for r in done)
