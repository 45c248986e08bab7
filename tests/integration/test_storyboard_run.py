"""A storyboard rendered on the tiny model: shots in order, each conditioned on the previous last frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ltx2_batch.cli import run
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS
from ltx2_batch.media.probe import read_frames
from tests.conftest import REPO_ROOT, AppFactory

pytestmark = pytest.mark.slow


def test_storyboard_chain_of_conditioning(app_factory: AppFactory, tmp_path: Path) -> None:
    manifest = BUNDLED_MANIFESTS / "examples/storyboard.yaml"
    assert run(app_factory(f"manifest={manifest}", "output.run_name=sb"), REPO_ROOT) == 0
    out = tmp_path / "outputs" / "sb"
    rows = pq.read_table(out / "ledger.parquet").to_pandas().query("row_kind == 'job' and status == 'done'")
    by_name = rows.set_index("job_name")
    assert len(by_name) == 4
    # the second shot of each scene started after the first one finished
    for scene in ("park", "harbour"):
        first, second = by_name.loc[f"{scene}__shot01"], by_name.loc[f"{scene}__shot02"]
        assert second.started_at >= first.finished_at
        sidecar = json.loads(Path(second.sidecar_path).read_text())
        params = json.loads(sidecar["params"])
        assert params["after"] == first.job_id
        assert params["prompt"].startswith("Following the previous shot where ")
        condition = params["images"][0]
        assert condition["frame_idx"] == 0 and condition["strength"] == 1
        png = np.asarray(Image.open(condition["path"]).convert("RGB"))
        last = read_frames(first.output_path)[-1]
        np.testing.assert_array_equal(png, last)  # exactly the decoded last frame of the previous shot
