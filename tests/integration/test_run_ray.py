"""engine=ray on a real local Ray with logical GPUs, on the tiny model: parallel actors, a killed actor,
and a multi-node cluster on loopback."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import ray

from ltx2_batch.cli import run
from tests.conftest import (
    REPO_ROOT,
    AppFactory,
    cpu_seconds,
    pids_titled,
    ray_temp_dir,
    start_test_ray,
    wait_until,
    write_manifest,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

JOBS = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled, audio: true}
jobs:
  - name: clip
    prompt: "A cat walks on a sunny street, soft piano music."
    sweep: {grid: {seed: [1, 2, 3, 4]}}
"""


def _job_rows(out: Path) -> pd.DataFrame:
    table = pq.read_table(out / "ledger.parquet").to_pandas()
    return table[table.row_kind == "job"]


@pytest.fixture
def local_ray() -> Iterator[None]:
    start_test_ray(num_cpus=4, num_gpus=2)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_two_gpu_actors_render_every_job_once(tmp_path: Path, app_factory: AppFactory) -> None:
    manifest = write_manifest(tmp_path / "m", JOBS)
    assert run(app_factory(f"manifest={manifest}", "engine=ray"), REPO_ROOT) == 0
    rows = _job_rows(tmp_path / "outputs" / "m")
    done = rows[rows.status == "done"]
    assert len(done) == 4 and done.job_id.is_unique
    assert set(done.worker) == {"ray-0", "ray-1"}  # one actor per logical GPU, both busy
    assert all(Path(p).is_file() for p in done.output_path)


CHAINED = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: long_walk, prompt: "A long walk on the beach.", seed: 2, num_frames: 145}
"""


@pytest.mark.usefixtures("local_ray")
def test_denoising_steps_cross_the_progress_queue_before_their_job_ends(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor's step events (throttled, each stage's end always sent) reach the driver's progress through
    the Ray queue, every window of the chained job included, and all of a job's before its end."""
    from ltx2_batch.core.step_events import StepEvent
    from ltx2_batch.run.progress import Progress

    seen: list[tuple[str, StepEvent | None]] = []  # None: the job finished
    stepped, finished = Progress.job_stepped, Progress.job_finished

    def record_step(self: Progress, name: str, step: StepEvent) -> None:
        seen.append((name, step))
        stepped(self, name, step)

    def record_end(self: Progress, name: str, status: str, seconds: float, error: str | None = None) -> None:
        seen.append((name, None))
        finished(self, name, status, seconds, error)

    monkeypatch.setattr(Progress, "job_stepped", record_step)
    monkeypatch.setattr(Progress, "job_finished", record_end)
    manifest = write_manifest(tmp_path / "m", CHAINED)
    assert run(app_factory(f"manifest={manifest}", "engine=ray", "engine.num_workers=1"), REPO_ROOT) == 0
    for name, windows in (("cat", 1), ("long_walk", 2)):
        mine = [step for job, step in seen if job == name]
        assert mine[-1] is None and None not in mine[:-1]  # every step event came before the job's end
        ends = [(e.stage, e.steps) for e in mine[:-1] if e is not None and e.stage_finished]
        assert ends == [(1, 8), (2, 3)] * windows


def _kill_first_rendering_actor(stop: threading.Event, killed: list[int]) -> None:
    """Ray titles an actor process `ray::RenderWorker.render` while it runs that method; it is killed once it
    has spent CPU time inside the render (the job is in the model, not just dispatched)."""
    while not stop.is_set() and not killed:
        for pid in pids_titled(b"ray::RenderWorker.render"):
            start = cpu_seconds(pid)
            wait_until(lambda p=pid, s=start: cpu_seconds(p) > s + 0.2 or stop.is_set(), 120, "a render")
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        stop.wait(0.05)


@pytest.mark.usefixtures("local_ray")
def test_killed_actor_is_replaced_and_every_job_done_exactly_once(
    tmp_path: Path,
    app_factory: AppFactory,
) -> None:
    manifest = write_manifest(tmp_path / "m", JOBS.replace("num_frames: 9", "num_frames: 49"))
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_rendering_actor, args=(stop, killed), daemon=True)
    killer.start()
    try:
        code = run(app_factory(f"manifest={manifest}", "engine=ray"), REPO_ROOT)
    finally:
        stop.set()
        killer.join()
    assert killed, "no actor was killed: the test did not exercise the fault path"
    assert code == 0
    rows = _job_rows(tmp_path / "outputs" / "m")
    done = rows[rows.status == "done"]
    assert done.job_id.value_counts().to_dict() == dict.fromkeys(done.job_id, 1)
    assert len(done) == 4
    retried = rows[(rows.status == "retried") & rows.error.str.contains("worker died")]
    assert len(retried) == 1
    second = done[done.job_id == retried.job_id.iloc[0]].iloc[0]
    assert second.attempt == 2
    assert second.worker == "ray-2"  # the replacement actor (ray-0 and ray-1 were the originals)


def test_multi_node_cluster_spreads_jobs(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray._private import services
    from ray.cluster_utils import Cluster

    # Ray rewrites a 127.0.0.1 address to the host's outward IP before connecting; this sandbox refuses
    # connections to that IP, so keep the driver on loopback like the nodes (a real cluster has real IPs).
    monkeypatch.setattr(services, "resolve_ip_for_localhost", lambda host: host)

    Path("/tmp/ray").mkdir(exist_ok=True)  # cluster_utils records the head address there
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "num_gpus": 1,
            "include_dashboard": False,
            "node_ip_address": "127.0.0.1",
            "temp_dir": ray_temp_dir(),
        },
    )
    cluster.add_node(num_cpus=2, num_gpus=1, node_ip_address="127.0.0.1")
    try:
        manifest = write_manifest(tmp_path / "m", JOBS)
        app = app_factory(
            f"manifest={manifest}",
            "engine=ray",
            f"engine.address={cluster.address}",
            "engine.node_ip_address=127.0.0.1",
        )
        assert run(app, REPO_ROOT) == 0
        done = _job_rows(tmp_path / "outputs" / "m").query("status == 'done'")
        assert len(done) == 4
        assert done.node.nunique() == 2, done.node.tolist()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_sigterm_cancels_in_flight_jobs_shuts_ray_down_and_rerun_resumes(tmp_path: Path) -> None:
    import subprocess
    import sys

    manifest = write_manifest(tmp_path / "m", JOBS.replace("num_frames: 9", "num_frames: 121"))
    cmd = [
        sys.executable,
        "-m",
        "ltx2_batch",
        f"manifest={manifest}",
        f"output.root={tmp_path / 'outputs'}",
        "engine=ray",
        "engine.num_gpus=2",
        "engine.num_cpus=3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if " start " in f" {line}":  # a job is dispatched: SIGTERM once an actor is inside its render
            wait_until(lambda: bool(pids_titled(b"ray::RenderWorker.render")), 120, "an actor rendering")
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=120)
    log = "".join(seen) + rest
    assert proc.returncode == 143, log  # 128 + SIGTERM
    rows = _job_rows(tmp_path / "outputs" / "m")
    assert "cancelled" in set(rows.status), log
    assert "rerun the same command to resume" in log
    wait_until(lambda: not pids_titled(b"ray::RenderWorker"), 15, "the Ray actors to exit")

    again = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert again.returncode == 0, again.stdout + again.stderr
    done = _job_rows(tmp_path / "outputs" / "m").query("status == 'done'")
    assert len(done) == 4 and done.job_id.is_unique


@pytest.mark.usefixtures("local_ray")
def test_a_worker_that_cannot_build_its_model_stops_the_run_with_its_error(
    tmp_path: Path, app_factory: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m", JOBS)
    code = run(app_factory(f"manifest={manifest}", "engine=ray", "model.device=cuda"), REPO_ROOT)
    err = capsys.readouterr().err
    assert code == 2
    assert "render workers could not start" in err and "model.device='cuda' is not available" in err
    # ray.kill is asynchronous
    wait_until(
        lambda: not pids_titled(b"ray::RenderWorker"), 15, "the render actors of the failed start to exit"
    )
