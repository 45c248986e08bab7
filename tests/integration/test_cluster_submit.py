"""Launch on an existing cluster the way people do: `ray start --head`, then `ray job submit -- ltx2-batch`.

The tool must join the cluster that `ray job submit` names in `$RAY_ADDRESS` (not start a private Ray
inside the job), and an unreachable address must be one error naming it, quickly. The cluster runs on
loopback with free ports and its own short temp dir; it is torn down by process id (its processes carry
that temp dir or its GCS port on their command line), never with `ray stop`, which would stop every Ray
on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_manifest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")
MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled, num_inference_steps: 2}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: hills, prompt: "Green hills under drifting clouds.", seed: 2}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _poll(what: str, ready: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)  # a polling interval under a deadline, not a wait for something to happen
    raise AssertionError(f"{what} not ready within {deadline_s:.0f}s")


def _dashboard_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _cluster_processes(temp_dir: str, gcs_port: int) -> list[psutil.Process]:
    """Processes of the cluster this test started: their command line names its temp dir or GCS port."""
    marks = (temp_dir, f":{gcs_port}")
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(mark in cmdline for mark in marks):
            for member in [proc, *proc.children(recursive=True)]:
                found[member.pid] = member
    return [p for pid, p in found.items() if pid != os.getpid()]


@pytest.fixture
def cluster() -> Iterator[tuple[str, str]]:
    """(GCS address, dashboard URL) of a fresh single-node cluster on loopback."""
    temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Unix socket path limit
    gcs, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    try:
        subprocess.run(
            [
                RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
                f"--temp-dir={temp_dir}", "--num-cpus=2", "--num-gpus=0", "--disable-usage-stats",
            ],
            check=True, capture_output=True, timeout=120, env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{dash}"
        _poll("the dashboard's job API", lambda: _dashboard_up(url), 60)
        yield f"127.0.0.1:{gcs}", url
    finally:
        procs = _cluster_processes(temp_dir, gcs)
        for proc in procs:
            proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=15)
        for proc in alive:
            proc.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_renders_into_the_ledger(cluster: tuple[str, str], tmp_path: Path) -> None:
    _, dashboard = cluster
    work = tmp_path / "job"
    write_manifest(work, MANIFEST, "clips.yaml")
    out = tmp_path / "out"  # absolute: the job runs in Ray's copy of the working dir
    env_vars = {"RAY_AUTH_MODE": "disabled"}
    if os.environ.get("PYTHONPATH"):  # a checkout run with PYTHONPATH (no editable install) passes it on
        env_vars["PYTHONPATH"] = os.environ["PYTHONPATH"]
    submitted = subprocess.run(
        [
            RAY, "job", "submit", "--address", dashboard, "--working-dir", str(work),
            "--runtime-env-json", json.dumps({"env_vars": env_vars}), "--",
            sys.executable, "-m", "ltx2_batch", "manifest=clips.yaml", "engine=ray", "engine.num_workers=1",
            "engine.gpus_per_worker=0", f"output.root={out}",
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        check=False,
    )  # fmt: skip
    log = submitted.stdout[-4000:] + submitted.stderr[-2000:]
    assert submitted.returncode == 0, log
    assert "Connecting to existing Ray cluster" in log  # joined, not a private Ray inside the job
    rows = pq.read_table(out / "clips" / "ledger.parquet").to_pandas()
    done = rows[(rows.row_kind == "job") & (rows.status == "done")]
    assert sorted(done.job_name) == ["cat", "hills"]
    assert all(Path(p).is_file() for p in done.output_path)


def test_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
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
