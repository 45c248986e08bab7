"""engine=ray on a real Ray with logical GPUs: parallel actors, step events through the progress queue, a
killed actor, a multi-node cluster on loopback, SIGTERM to the command, and a worker that cannot build.

The in-process runs join the session's private Ray (tests/fixtures/ray.py `session_ray`: 4 CPUs, 2 logical
GPUs) and render on the fake model, whose actors import no torch; slow and failing jobs come from its tags.
The multi-node run is a driver process joined to the session's `ray start` cluster with a node added; the
SIGTERM run is the command with a private Ray of its own (its exit code and its Ray's shutdown are the
subject). The tiny real model renders on Ray actors in tests/integration/test_overlap.py (sequential and
overlapped runs, compared byte for byte); here it is the model whose worker cannot start (no CUDA).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, AppFactory, pids_titled, wait_until, write_manifest
from tests.fixtures.ray import RayCluster

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("session_ray")]

JOBS = """
defaults: {{width: 32, height: 32, num_frames: 9, upscale: {{spatial: false}}, audio: true{tags}}}
jobs:
  - name: clip
    prompt: "A cat walks on a sunny street, soft piano music."
    sweep: {{grid: {{seed: [1, 2, 3, 4]}}}}
"""


def _jobs(tags: str = "") -> str:
    return JOBS.format(tags=f", tags: {{{tags}}}" if tags else "")


def _job_rows(out: Path) -> pd.DataFrame:
    table = pq.read_table(out / "ledger.parquet").to_pandas()
    return table[table.row_kind == "job"]


def _actors_gone(session: int | None = None) -> None:
    """This test's render actors have exited (ray.kill is asynchronous): the session Ray's, or those of the
    command started in process session `session`."""
    wait_until(
        lambda: not pids_titled(b"ray::RenderWorker", session=session), 30, "the render actors to exit"
    )


def _rendering(session: int | None = None) -> list[int]:
    """This test's actors inside a render (Ray titles an actor process with the method it runs)."""
    return pids_titled(b"ray::RenderWorker.render", session=session)


def test_two_gpu_actors_render_every_job_once(tmp_path: Path, app_factory: AppFactory) -> None:
    manifest = write_manifest(tmp_path / "m", _jobs())
    assert run(app_factory(f"manifest={manifest}", "engine=ray", "model=fake"), REPO_ROOT) == 0
    rows = _job_rows(tmp_path / "outputs" / "m")
    done = rows[rows.status == "done"]
    assert len(done) == 4 and done.job_id.is_unique
    assert set(done.worker) == {"ray-0", "ray-1"}  # one actor per logical GPU, both busy
    assert all(Path(p).is_file() for p in done.output_path)
    _actors_gone()


CHAINED = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: long_walk, prompt: "A long walk on the beach.", seed: 2, num_frames: 145}
"""


def test_denoising_steps_cross_the_progress_queue_before_their_job_ends(
    tmp_path: Path, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor's step events (throttled, each stage's end always sent) reach the driver's progress through
    the Ray queue, every window of the chained job included, and all of a job's before its end."""
    from ltx2_batch.backends.fake import FAKE_STEPS
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
    app = app_factory(f"manifest={manifest}", "engine=ray", "engine.num_workers=1", "model=fake")
    assert run(app, REPO_ROOT) == 0
    for name, windows in (("cat", 1), ("long_walk", 2)):
        mine = [step for job, step in seen if job == name]
        assert mine[-1] is None and None not in mine[:-1]  # every step event came before the job's end
        ends = [(e.stage, e.steps) for e in mine[:-1] if e is not None and e.stage_finished]
        assert ends == [(1, FAKE_STEPS)] * windows  # one stage per fake window
    _actors_gone()


def _kill_first_rendering_actor(stop: threading.Event, killed: list[int]) -> None:
    """Ray titles an actor process `ray::RenderWorker.render` while it runs that method; the fake renders
    of this test take half a second each (tag), so the one found rendering is killed inside its render."""
    while not stop.is_set() and not killed:
        for pid in _rendering():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        stop.wait(0.05)


def test_killed_actor_is_replaced_and_every_job_done_exactly_once(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    manifest = write_manifest(tmp_path / "m", _jobs('fake_render_s: "0.5"'))
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_rendering_actor, args=(stop, killed), daemon=True)
    killer.start()
    try:
        code = run(app_factory(f"manifest={manifest}", "engine=ray", "model=fake"), REPO_ROOT)
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
    assert set(done.worker) <= {"ray-0", "ray-1", "ray-2"}  # ray-2: the pool's one replacement
    _actors_gone()


def test_the_next_batch_starts_while_the_last_jobs_of_a_batch_still_render(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    """A prompt file streams in batches (batch_jobs=3 here): the runner plans the next batch while this one's
    last jobs render, so a worker that finishes early takes a job of the next batch instead of waiting for
    the other worker's job to end (the ledger's timestamps show it)."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "caps.txt").write_text("".join(f"a walk number {i}\n" for i in range(6)))
    manifest = write_manifest(
        tmp_path / "m",
        "jobs:\n  - {name: p, prompts: {path: caps.txt}, width: 32, height: 32, num_frames: 9, seed: 1,"
        " upscale: {spatial: false}, audio: false, tags: {fake_render_s: '1.0'}}\n",
    )
    app = app_factory(
        f"manifest={manifest}", "batch_jobs=3", "engine=ray", "engine.num_workers=2", "model=fake"
    )
    assert run(app, REPO_ROOT) == 0
    done = _job_rows(tmp_path / "outputs" / "m").query("status == 'done'")
    assert len(done) == 6
    by_line = done.assign(line=done.prompt.str.extract(r"(\d+)$")[0].astype(int))
    first, second = by_line[by_line.line < 3], by_line[by_line.line >= 3]
    assert second.started_at.min() < first.finished_at.max()  # no drain at the boundary
    _actors_gone()


@pytest.mark.slow  # a node joins, a driver process joins the cluster
def test_multi_node_cluster_spreads_jobs(tmp_path: Path, ray_cluster: RayCluster) -> None:
    """A second node joins the session's cluster (one logical GPU each): the command, joined to the cluster
    the way `ray job submit` has it joined ($RAY_ADDRESS), puts one actor on each node."""
    node = ray_cluster.add_node(num_gpus=1)
    try:
        manifest = write_manifest(tmp_path / "m", _jobs('fake_render_s: "1.5"'))  # both workers get work
        cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={tmp_path / 'o'}"]
        cmd += ["model=fake", "engine=ray", "engine.node_ip_address=127.0.0.1", "progress=false"]
        done = subprocess.run(
            cmd, env=ray_cluster.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    finally:
        node.kill()
    rows = _job_rows(tmp_path / "o" / "m").query("status == 'done'")
    assert len(rows) == 4
    assert rows.node.nunique() == 2, rows.node.tolist()


@pytest.mark.slow  # the command starts a private Ray of its own
def test_sigterm_cancels_in_flight_jobs_shuts_its_ray_down_and_rerun_resumes(
    tmp_path: Path, app_factory: AppFactory
) -> None:
    """The command with a private Ray of its own, SIGTERMed while its actors render: exit 143, in-flight
    jobs cancelled, its Ray and actors gone. The rerun (in process, on the session's Ray) resumes."""
    manifest = write_manifest(tmp_path / "m", _jobs('fake_render_s: "1.0"'))
    out = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={out}", "model=fake"]
    cmd += ["engine=ray", "engine.num_gpus=2", "engine.num_cpus=3"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
            wait_until(lambda: bool(_rendering(proc.pid)), 120, "an actor rendering")
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=120)
    log = "".join(seen) + rest
    assert proc.returncode == 143, log  # 128 + SIGTERM
    rows = _job_rows(out / "m")
    assert "cancelled" in set(rows.status), log
    assert "rerun the same command to resume" in log
    _actors_gone(session=proc.pid)  # its Ray went down with it

    app = app_factory(f"manifest={manifest}", "engine=ray", "model=fake", "progress=false")
    assert run(app, REPO_ROOT) == 0
    done = _job_rows(out / "m").query("status == 'done'")
    assert len(done) == 4 and done.job_id.is_unique
    _actors_gone()


@pytest.mark.slow
def test_a_worker_that_cannot_build_its_model_stops_the_run_with_its_error(
    tmp_path: Path, app_factory: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m", _jobs())
    app = app_factory(f"manifest={manifest}", "engine=ray", "engine.num_workers=1", "model.device=cuda")
    code = run(app, REPO_ROOT)
    err = capsys.readouterr().err
    assert code == 2
    assert "render worker ray-0: model.device='cuda' is not available" in err
    assert "Traceback" not in err  # the tool's own message, once, not the actor's stack
    _actors_gone()
