"""Warm pools on a real Ray: the session's private Ray (tests/fixtures/ray.py `session_ray`), whose detached
actors outlive every launch of the session, with launches in this process and, where two launches must run at
once or with other code, a driver process joined to the same Ray. Every pool renders on the fake model (its
actors import no torch; `builds` counts pipeline builds inside the actor); each test ends its pool.

Reuse across launches run as separate processes, on a Ray the tool starts with `ray start`, is
tests/integration/test_pool_local_ray.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import ray

from ltx2_batch.cli import run
from ltx2_batch.core.code_identity import code_hash
from ltx2_batch.core.tool_paths import PACKAGE_DIR
from ltx2_batch.runners.pool import end_pool, pool_actors, pool_statuses
from tests.conftest import REPO_ROOT, AppFactory, pids_titled, wait_until, write_manifest

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("session_ray")]

JOBS = """
defaults: {{width: 32, height: 32, num_frames: 9, upscale: {{spatial: false}}, audio: false{tags}}}
jobs:
  - name: {name}
    prompt: "A cat walks on a sunny street."
    sweep: {{grid: {{seed: [{seeds}]}}}}
"""


def _manifest(folder: Path, name: str = "clip", jobs: int = 4, render_s: float | None = None) -> Path:
    tags = f', tags: {{fake_render_s: "{render_s}"}}' if render_s else ""
    seeds = ", ".join(str(i) for i in range(1, jobs + 1))
    return write_manifest(folder, JOBS.format(tags=tags, name=name, seeds=seeds), name=f"{name}.yaml")


def _engine(pool: str) -> list[str]:
    return [
        "engine=ray", "model=fake", f"engine.pool={pool}", "engine.num_workers=2",
        "engine.gpus_per_worker=0", "engine.cpus_per_worker=0.5", "progress=false",
    ]  # fmt: skip


def _rows(out: Path) -> pd.DataFrame:
    table = pq.read_table(out / "ledger.parquet").to_pandas()
    return table[table.row_kind == "job"]


def _status(pool: str) -> dict[str, Any]:
    """This code version's owner of `pool`, as `pool status` reads it."""
    mine = [s for s in pool_statuses(pool, code_hash()) if not s.get("other_version")]
    assert len(mine) == 1, mine
    return mine[0]


def _rendering(pool: str) -> bool:
    """Whether a worker of `pool` has a job in hand, as its `stats` say (a threaded actor's process title
    names the call that started last: `lifeline` as often as `render`)."""
    return any(w.get("rendering") for s in pool_statuses(pool, code_hash()) for w in s.get("workers", ()))


@pytest.fixture
def pool() -> Iterator[str]:
    """A pool name of this test's own, ended (and its actors gone) afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    end_pool(name)
    wait_until(lambda: not pool_actors(name), 60, f"pool {name}'s actors to end")


def _driver(
    args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO_ROOT
) -> subprocess.Popen[str]:
    """A launch in its own process, joined to the session's Ray (`python -m` imports the package from `cwd`
    first)."""
    joined = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ltx2_batch", *args],
        cwd=cwd,
        env={**joined, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_pool_of_other_weights_is_not_used_and_idle_workers_exit_by_themselves(
    tmp_path: Path,
    app_factory: AppFactory,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`pool up` loads the model in each worker; two launches then build nothing; a launch of other weights
    starts workers of its own beside them; once every launch is gone the pool's idle workers exit, and then
    its owner."""
    monkeypatch.setenv("LTX2_BATCH_STATE", str(tmp_path / "state"))  # no real local pool Ray is looked for
    assert run(app_factory("pool=up", *_engine(pool)), REPO_ROOT) == 0
    warmed = capsys.readouterr().out
    assert f"pool {pool}: 2 worker(s) of model=fake ready" in warmed, warmed
    assert re.findall(r"^(ray-\d)\s+idle\s.*\s1\s+\d+\s+\d+$", warmed, re.MULTILINE) == ["ray-0", "ray-1"], (
        warmed
    )
    manifest = _manifest(tmp_path / "m")
    for run_name in ("first", "again"):
        app = app_factory(f"manifest={manifest}", f"output.run_name={run_name}", *_engine(pool))
        assert run(app, REPO_ROOT) == 0
    warm = _status(pool)["workers"]
    assert sorted(w["worker"] for w in warm) == ["ray-0", "ray-1"]
    assert [w["builds"] for w in warm] == [1, 1]  # built by `pool up`: the launches built nothing
    assert sum(w["jobs"] for w in warm) == 8
    # other weights, and from now on a one-second idle timeout for the whole pool
    other = app_factory(
        f"manifest={manifest}",
        "output.run_name=other",
        "model.seed=1",
        "engine.pool_idle_s=1",
        *_engine(pool),
    )
    assert run(other, REPO_ROOT) == 0
    done_by = set(_rows(tmp_path / "outputs" / "other").query("status == 'done'").worker)
    assert done_by and done_by <= {"ray-2", "ray-3"}  # never ray-0 or ray-1, which hold other weights
    wait_until(lambda: not pool_actors(pool), 30, "the idle pool's workers and owner to exit")


def test_a_worker_killed_mid_job_is_replaced_once_by_the_owner_and_its_job_retried(
    tmp_path: Path, pool: str
) -> None:
    """A launch (a process of its own, which starts the pool) loses a worker inside a render: it retries that
    job, the pool's owner, not the launch, replaces the worker, once, and the launch's console carries none
    of Ray's worker-death lines (Ray publishes them to the job that made the worker: this launch's)."""
    manifest = _manifest(tmp_path / "m", render_s=1.0)
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_rendering() -> None:
        while not stop.is_set() and not killed:
            for pid in pids_titled(b"ray::RenderWorker.render"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            stop.wait(0.05)

    killer = threading.Thread(target=kill_one_rendering, daemon=True)
    killer.start()
    launch = _driver([f"manifest={manifest}", f"output.root={tmp_path / 'outputs'}", *_engine(pool)[:-1]])
    try:
        log, _ = launch.communicate(timeout=300)
    finally:
        stop.set()
        killer.join()
    assert killed and launch.returncode == 0, log
    assert "A worker died" not in log and "(raylet)" not in log, log
    assert "worker died (will retry)" in log  # the job's own line says why it was retried
    rows = _rows(tmp_path / "outputs" / "clip")
    done = rows[rows.status == "done"]
    assert len(done) == 4 and done.job_id.is_unique
    retried = rows[rows.status == "retried"]
    assert len(retried) == 1 and "worker died" in retried.error.iloc[0]
    assert done[done.job_id == retried.job_id.iloc[0]].attempt.iloc[0] == 2
    status = _status(pool)
    assert status["replaced"] == 1 and len(status["workers"]) == 2  # one death, one replacement


def test_pool_down_during_a_launch_stops_it_and_a_rerun_resumes(
    tmp_path: Path, app_factory: AppFactory, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path / "m", jobs=4, render_s=1.0)
    ended: list[tuple[int, int]] = []

    def down_once_rendering() -> None:
        wait_until(lambda: _rendering(pool), 120, "a pool worker rendering", poll_s=0.2)
        ended.append(end_pool(pool))

    downer = threading.Thread(target=down_once_rendering, daemon=True)
    downer.start()
    code = run(app_factory(f"manifest={manifest}", *_engine(pool)), REPO_ROOT)
    downer.join()
    assert ended and ended[0][1] == 2  # both workers ended, by the pool's own `down`
    assert code == 2
    assert "stopped serving this launch" in capsys.readouterr().err
    rows = _rows(tmp_path / "outputs" / "clip")
    assert rows.query("status == 'done'").job_id.is_unique
    latest = pq.read_table(tmp_path / "outputs" / "clip" / "jobs.parquet").to_pandas()
    assert set(latest.status) <= {"done", "cancelled"}, latest[
        ["job_id", "status", "error"]
    ]  # none "retried"
    assert run(app_factory(f"manifest={manifest}", *_engine(pool)), REPO_ROOT) == 0
    assert len(_rows(tmp_path / "outputs" / "clip").query("status == 'done'")) == 4


def _wait_rendering(launch: subprocess.Popen[str], pool: str, timeout_s: float = 120) -> None:
    """Until a worker of `pool` renders; fail at once if `launch` exits first, and on either failure show
    its console and what Ray had free (a launch that cannot start a worker waits, silent)."""
    try:
        wait_until(
            lambda: launch.poll() is not None or _rendering(pool), timeout_s, "a worker rendering", poll_s=0.2
        )
        assert launch.poll() is None, "the launch ended before rendering"
    except AssertionError as failed:
        os.killpg(launch.pid, signal.SIGKILL)  # its own session: the driver and all it started
        log, _ = launch.communicate(timeout=60)
        free = ray.available_resources()
        raise AssertionError(f"{failed}\nfree in Ray: {free}\nthe launch's console:\n{log}") from None


LONG_JOB = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}, audio: false}
jobs:
  - name: endless
    prompt: "A walk that takes ten minutes."
    seed: 1
    tags: {fake_render_s: "600", fake_steps: "600"}
"""


def test_a_launch_killed_with_sigkill_has_its_render_cancelled_and_the_warm_worker_serves_the_next(
    tmp_path: Path, pool: str
) -> None:
    """A launch's driver is killed with SIGKILL inside a 10-minute render (of one-second steps) on a
    one-worker pool. The pool's owner sees the driver gone (its progress sink died with it), ends its lease
    and cancels that render at its next step: the same warm worker (no replacement) then serves the next
    launch, which would otherwise queue behind a render for nobody, and the dead job publishes nothing."""
    one_worker = [arg.replace("num_workers=2", "num_workers=1") for arg in _engine(pool)]
    out = tmp_path / "outputs"
    dead_manifest = write_manifest(tmp_path / "a", LONG_JOB, name="a.yaml")
    dead = _driver([f"manifest={dead_manifest}", f"output.root={out}", *one_worker])
    try:
        _wait_rendering(dead, pool)
        pids = {w["worker"]: w["pid"] for w in _status(pool)["workers"]}
    finally:
        with contextlib.suppress(ProcessLookupError):  # already ended by a failed wait
            os.killpg(dead.pid, signal.SIGKILL)  # its own session: the driver and all it started
        dead.communicate(timeout=60)
    next_manifest = _manifest(tmp_path / "b", name="b", jobs=2)
    following = _driver([f"manifest={next_manifest}", f"output.root={out}", *one_worker])
    try:
        log, _ = following.communicate(timeout=180)  # a render for nobody would hold the worker 600 s
    finally:
        if following.poll() is None:
            following.kill()
    assert following.returncode == 0, log
    assert len(_rows(out / "b").query("status == 'done'")) == 2
    status = _status(pool)
    assert status["replaced"] == 0 and {w["worker"]: w["pid"] for w in status["workers"]} == pids
    assert status["launches"] == 0 and not any(w["rendering"] for w in status["workers"])  # it returned
    assert not list((out / "a").rglob("*.mp4"))  # the cancelled render published nothing


A_JOBS = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}, audio: false}
jobs:
  - {name: long, prompt: "A long walk.", seed: 1, tags: {fake_render_s: "3.0"}}
  - name: short
    prompt: "A short walk."
    tags: {fake_render_s: "1.0"}
    sweep: {grid: {seed: [2, 3]}}
"""


def _intervals(rows: pd.DataFrame) -> list[tuple[str, float, float, str]]:
    final = rows[rows.status.isin(["done", "cancelled"]) & rows.started_at.notna()]
    return [
        (r.worker, r.started_at.timestamp(), r.finished_at.timestamp(), r.run_id) for r in final.itertuples()
    ]


# A row's times are the driver's: dispatched, and collected (one poll after the worker returned and, already,
# ended its lease). Two launches' rows on one worker may touch by that much, never by a render's length.
COLLECT_SLACK_S = 0.5


def test_two_launches_share_a_pool_and_one_cancel_stops_only_its_own_jobs(
    tmp_path: Path, app_factory: AppFactory, pool: str
) -> None:
    """Launch A (its own process) and launch B (this one) render on one pool at once; A is interrupted while
    both hold workers. A's render stops at a denoising step (no worker is killed or replaced), B finishes
    every job, no job is done twice, and no worker ever held jobs of both launches at the same time.

    A takes both workers first: a 3 s job and a 1 s one. B waits for a slot (A asks for none it cannot use),
    gets the short job's worker when it ends, and renders there while A's long job goes on: A is
    interrupted then."""
    first = write_manifest(tmp_path / "a", A_JOBS, name="a.yaml")
    second = _manifest(tmp_path / "b", name="b", jobs=4, render_s=0.6)
    out = tmp_path / "outputs"
    launch_a = _driver([f"manifest={first}", f"output.root={out}", *_engine(pool)[:-1]])
    assert launch_a.stdout is not None
    for line in launch_a.stdout:
        if " start " in f" {line}":
            break
    pids = {w["worker"]: w["pid"] for w in _status(pool)["workers"]}

    def interrupt_a_once_both_render() -> None:
        wait_until(
            lambda: len({w["launch"] for w in _status(pool)["workers"]} - {"-"}) == 2,
            120,
            "A and B both rendering",
        )
        launch_a.send_signal(signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_a_once_both_render, daemon=True)
    interrupter.start()
    assert run(app_factory(f"manifest={second}", *_engine(pool)), REPO_ROOT) == 0
    interrupter.join()
    rest, _ = launch_a.communicate(timeout=120)
    assert launch_a.returncode == 130, rest
    rows_a, rows_b = _rows(out / "a"), _rows(out / "b")
    assert len(rows_b.query("status == 'done'")) == 4 and rows_b.query("status == 'done'").job_id.is_unique
    assert rows_a.query("status == 'done'").job_id.is_unique
    cancelled = rows_a.query("status == 'cancelled'")
    assert list(cancelled.job_name) == ["long"] and "cancelled at step" in cancelled.error.iloc[0], rest
    status = _status(pool)
    assert status["replaced"] == 0 and {w["worker"]: w["pid"] for w in status["workers"]} == pids
    spans = _intervals(pd.concat([rows_a, rows_b]))
    for worker, start, end, run_id in spans:  # a worker holds one launch's job at a time
        shared = [min(end, s[2]) - max(start, s[1]) for s in spans if s[0] == worker and s[3] != run_id]
        assert max(shared, default=0.0) < COLLECT_SLACK_S, (worker, run_id, shared)


def test_a_launch_of_other_code_never_uses_the_pool_of_this_code(
    tmp_path: Path, app_factory: AppFactory, pool: str
) -> None:
    """A copy of the package with one line changed is another version of the tool: its launch (submitted
    with its code as the job's runtime env, as `ray job submit --runtime-env-json` would) gets an owner and
    workers of its own; this version's workers serve nothing of it, and `pool status` names the other."""
    manifest = _manifest(tmp_path / "m", jobs=2)
    assert run(app_factory(f"manifest={manifest}", "output.run_name=ours", *_engine(pool)), REPO_ROOT) == 0
    served = sum(w["jobs"] for w in _status(pool)["workers"])
    copy = tmp_path / "other_version"
    shutil.copytree(PACKAGE_DIR, copy / "ltx2_batch", ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "ltx2_batch" / "__init__.py").open("a") as handle:
        handle.write("# another version\n")
    job_config = {"runtime_env": {"env_vars": {"PYTHONPATH": str(copy)}}}
    other = _driver(
        [
            f"manifest={manifest}",
            f"output.root={tmp_path / 'outputs'}",
            "output.run_name=theirs",
            *_engine(pool),
        ],
        env={"PYTHONPATH": str(copy), "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(job_config)},
        cwd=tmp_path,
    )
    log, _ = other.communicate(timeout=300)
    assert other.returncode == 0, log
    assert len(_rows(tmp_path / "outputs" / "theirs").query("status == 'done'")) == 2
    statuses = pool_statuses(pool, code_hash())
    assert sum(w["jobs"] for w in _status(pool)["workers"]) == served  # nothing of theirs ran here
    assert [s["worker_count"] for s in statuses if s.get("other_version")] == [2]


def test_a_worker_refuses_to_serve_a_launch_of_other_code() -> None:
    """A node whose installed package differs from the launch's (the key's code hash) refuses, with why,
    instead of rendering with other code."""
    from ltx2_batch.config import ModelConfig, ModelSource
    from ltx2_batch.runners.render_worker import RenderWorker
    from ltx2_batch.worker.spec import WorkerSpec

    spec = WorkerSpec(ModelConfig(name="fake", source=ModelSource.fake), str(REPO_ROOT))
    worker = ray.remote(RenderWorker).options(num_cpus=0).remote(spec, "ray-x", None, "0123456789abcdef")
    try:
        answer = ray.get(worker.where.remote(), timeout=120)
    finally:
        ray.kill(worker)
    assert "is not the launch's (0123456789abcdef)" in answer["refusal"]
    assert code_hash() in answer["refusal"]
