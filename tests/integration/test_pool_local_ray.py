"""A warm pool on one machine without a cluster: the first launch starts a local Ray with `ray start` (in its
own process group, recorded in the state home), a second launch, another process, renders on the same warm
actors without building anything, `pool status` shows them, and `pool down` ends the pool and that Ray (its
process group only). The launches are the command itself (`python -m ltx2_batch`) on the fake model; the
second one is also the subject of the driver's weight: it imports no torch, and its console carries none of
Ray's start-up or worker chatter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.runners.local_ray import LocalRay, alive, read_record, stop_local_ray
from tests.conftest import REPO_ROOT, wait_until, write_manifest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MANIFEST = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}, audio: false}
jobs:
  - name: clip
    prompt: "A cat walks on a sunny street."
    sweep: {grid: {seed: [1, 2, 3, 4]}}
"""
# what Ray prints on a driver's console unless it is kept off (runners/ray_connect.py)
RAY_CHATTER = re.compile(r"Started a local Ray instance|Connecting to existing Ray|logging\.cc|\(raylet\)")
MODEL_RUNTIME_IMPORT = re.compile(r"\|\s+(torch|ltx_core|ltx_pipelines|transformers)(\.|$)", re.MULTILINE)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """The state home of these launches; a local Ray left running by a failed test is stopped."""
    home = tmp_path / "state"
    yield home
    local = read_record(home)
    if local is not None:
        stop_local_ray(local, home)


def _command(args: list[str], state: Path, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LTX2_BATCH_STATE": str(state), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)  # no cluster named: the pool needs the local Ray the tool starts
    return subprocess.run(
        [sys.executable, *python, "-m", "ltx2_batch", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _table(text: str) -> list[dict[str, str]]:
    """`pool status` rows: the line starting `worker` is the header, every cell one word."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("worker "))
    names = lines[header].split()
    return [
        dict(zip(names, line.split(), strict=True)) for line in lines[header + 1 :] if line.startswith("ray-")
    ]


def test_a_pool_on_a_local_ray_outlives_each_launch_and_pool_down_stops_that_ray(
    tmp_path: Path, state: Path
) -> None:
    manifest = write_manifest(tmp_path / "m", MANIFEST)
    pool = f"local{uuid.uuid4().hex[:6]}"
    engine = [
        "model=fake",
        "engine=ray",
        f"engine.pool={pool}",
        "engine.num_workers=2",
        "engine.gpus_per_worker=0",
    ]
    common = [f"manifest={manifest}", f"output.root={tmp_path / 'out'}", *engine]
    first = _command([*common, "output.run_name=first"], state)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "started a local Ray for warm pools" in first.stdout
    local = read_record(state)
    assert isinstance(local, LocalRay) and alive(local)  # it outlived the launch that started it

    second = _command([*common, "output.run_name=second"], state, python=("-X", "importtime"))
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert "started a local Ray" not in second.stdout  # the running one was joined
    assert not MODEL_RUNTIME_IMPORT.search(second.stderr), MODEL_RUNTIME_IMPORT.findall(second.stderr)
    lines = second.stderr.splitlines()
    console = second.stdout + "\n".join(line for line in lines if not line.startswith("import time:"))
    assert not RAY_CHATTER.search(console), console[-2000:]

    status = _command(["pool", "status", f"engine.pool={pool}"], state)
    assert status.returncode == 0, status.stderr[-2000:]
    rows = _table(status.stdout)
    assert [row["builds"] for row in rows] == ["1", "1"], status.stdout  # the second launch built nothing
    assert sum(int(row["jobs"]) for row in rows) == 8, status.stdout
    assert {row["state"] for row in rows} == {"idle"}

    down = _command(["pool", "down", f"engine.pool={pool}"], state)
    assert down.returncode == 0, down.stderr[-2000:]
    assert "stopped the local Ray this tool started" in down.stdout, down.stdout
    wait_until(lambda: not alive(local), 30, "the local Ray's process group to end")
    assert read_record(state) is None
    for run_name in ("first", "second"):
        rows = pq.read_table(tmp_path / "out" / run_name / "ledger.parquet").to_pandas()
        done = rows[(rows.row_kind == "job") & (rows.status == "done")]
        assert len(done) == 4 and done.job_id.is_unique
