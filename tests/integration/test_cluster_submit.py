"""Launch on an existing cluster the way people do: `ray start --head`, then `ray job submit -- ltx2-batch`.

The tool must join the cluster that `ray job submit` names in `$RAY_ADDRESS` (not start a private Ray
inside the job), and an unreachable address must be one error naming it, quickly. The cluster is the
session's (tests/fixtures/ray.py `ray_cluster`: loopback, free ports, its own process groups, never
`ray stop`); the job renders on the fake model, whose actors import no torch (the tiny model on Ray
actors is tests/integration/test_overlap.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import write_manifest
from tests.fixtures.ray import RAY, RayCluster, free_port

pytestmark = pytest.mark.ray

MANIFEST = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: hills, prompt: "Green hills under drifting clouds.", seed: 2}
"""


@pytest.mark.slow  # ray job submit, a job driver, actors
def test_ray_job_submit_renders_into_the_ledger(ray_cluster: RayCluster, tmp_path: Path) -> None:
    work = tmp_path / "job"
    write_manifest(work, MANIFEST, "clips.yaml")
    out = tmp_path / "out"  # absolute: the job runs in Ray's copy of the working dir
    env_vars = {"RAY_AUTH_MODE": "disabled"}
    if os.environ.get("PYTHONPATH"):  # a checkout run with PYTHONPATH (no editable install) passes it on
        env_vars["PYTHONPATH"] = os.environ["PYTHONPATH"]
    submitted = subprocess.run(
        [
            RAY, "job", "submit", "--address", ray_cluster.dashboard, "--working-dir", str(work),
            "--runtime-env-json", json.dumps({"env_vars": env_vars}), "--",
            sys.executable, "-m", "ltx2_batch", "manifest=clips.yaml", "model=fake", "engine=ray",
            "engine.num_workers=1", "engine.gpus_per_worker=0", f"output.root={out}",
            "verbose=true",  # Ray's own start-up lines, which say whether it joined or started a Ray
        ],
        capture_output=True, text=True, timeout=600, env=ray_cluster.env, check=False,
    )  # fmt: skip
    log = submitted.stdout[-4000:] + submitted.stderr[-2000:]
    assert submitted.returncode == 0, log
    assert "Connecting to existing Ray cluster" in log  # joined, not a private Ray inside the job
    rows = pq.read_table(out / "clips" / "ledger.parquet").to_pandas()
    done = rows[(rows.row_kind == "job") & (rows.status == "done")]
    assert sorted(done.job_name) == ["cat", "hills"]
    assert all(Path(p).is_file() for p in done.output_path)


def test_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "disabled"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ltx2_batch", "engine=ray", f"output.root={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port} (from $RAY_ADDRESS)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert time.monotonic() - started < 60  # bounded: not Ray's own minute of retries
    assert not (tmp_path / "out").exists()  # refused before any ledger row or model work
