"""A bucket run when things go wrong, against a real S3 API (moto's server, tests/fixtures/s3.py): the driver
killed with -9 mid-run (its lease does not block the rerun, the rows it had uploaded survive, the jobs it
finished are not rendered again), a store that goes away mid-run (a job whose upload fails is failed, never
done), and credentials, which no file the run writes (objects, scratch, logs, config.yaml) may hold."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.ledger.store import list_journals, read_journal_span, read_rows
from ltx2_batch.storage.location import scratch_key
from ltx2_batch.storage.objects import ObjectStore
from tests.conftest import REPO_ROOT, compose_app, wait_until, write_manifest
from tests.fixtures.s3 import bucket_objects, start_server, stop_server

SLOW = """
defaults:
  {{width: 32, height: 32, num_frames: 9, upscale: {{spatial: false}}, tags: {{fake_render_s: "{s}"}}}}
jobs:
{jobs}
"""


def _manifest(folder: Path, count: int, render_s: float) -> Path:
    jobs = "\n".join(f"  - {{name: j{i}, prompt: 'Clip number {i}', seed: {i}}}" for i in range(count))
    return write_manifest(folder / "m", SLOW.format(s=render_s, jobs=jobs), "clips.yaml")


def _args(manifest: Path, root: str, scratch: Path, *extra: str) -> list[str]:
    return [
        f"manifest={manifest}", "model=fake", f"output.root={root}", f"output.scratch={scratch}",
        "progress=false", *extra,
    ]  # fmt: skip


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ltx2_batch", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow  # a launch of the command
def test_a_driver_killed_with_9_resumes_without_rendering_its_finished_jobs_again(
    s3_bucket: str, tmp_path: Path
) -> None:
    """The driver uploads its journal's new rows every 0.3 s; SIGKILL once two jobs' files are in the
    bucket. The rerun takes the dead driver's lease over at once (same machine, its pid is gone), keeps the
    rows it had uploaded, adopts from their objects the finished jobs whose rows were lost, renders the
    rest, and folds the dead run's journal parts into ledger.parquet."""
    root, url = f"{s3_bucket}/runs", f"{s3_bucket}/runs/clips"
    manifest = _manifest(tmp_path, 4, 0.7)
    args = _args(manifest, root, tmp_path / "scratch", "ledger_refresh_s=0.3")
    proc = _cli(args, {}, tmp_path)
    store = ObjectStore(url)
    try:
        wait_until(lambda: len(store.listing("metadata/")) >= 2, 120, "two jobs published", poll_s=0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)
    finished = {rel.removeprefix("metadata/").removesuffix(".json") for rel in store.listing("metadata/")}
    assert 2 <= len(finished) < 4, output
    assert store.listing("leases/"), "the killed driver's lease is still there"
    killed_parts = [rel for rel in store.listing("ledger/") if rel.endswith(".jsonl")]
    assert killed_parts, "the killed driver had uploaded journal parts"

    assert run(compose_app(*args), REPO_ROOT) == 0  # at once: the lease's holder is a dead local process
    objects = bucket_objects(url)
    assert not [name for name in objects if name.startswith(("ledger/", "leases/"))]  # folded, released
    rows = pq.read_table(io.BytesIO(objects["ledger.parquet"])).to_pylist()
    runs = sorted({r["run_id"] for r in rows})
    assert len(runs) == 2  # the killed run's uploaded rows survive in ledger.parquet
    for job_id in finished:
        mine = [r for r in rows if r["job_id"] == job_id and r["row_kind"] == "job"]
        assert sum(r["status"] == "running" for r in mine) <= 1, mine  # never rendered again
        final = [r for r in mine if r["status"] in ("done", "skipped")]
        assert final, mine  # done in the killed run's rows, or adopted from its objects now
    done = {r["job_id"] for r in rows if r["status"] == "done" and r["row_kind"] == "job"}
    assert len(done) == 4


DOOMED = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}}
jobs:
  - {name: j0, prompt: 'Clip number 0', seed: 0, tags: {fake_render_s: "0.2"}}
  - {name: j1, prompt: 'Clip number 1', seed: 1, tags: {fake_render_s: "2.5"}}
  - {name: j2, prompt: 'Clip number 2', seed: 2, tags: {fake_render_s: "2.5"}}
"""


def _recorded_done(output_dir: Path, name: str) -> bool:
    """Whether the driver's own journal holds a done row of job `name` (whole lines only: it is live)."""
    for journal in list_journals(output_dir):
        table, _ = read_journal_span(journal, 0)
        rows = [] if table is None else table.select(["job_name", "row_kind", "status"]).to_pylist()
        if any(r["job_name"] == name and r["row_kind"] == "job" and r["status"] == "done" for r in rows):
            return True
    return False


@pytest.mark.usefixtures("s3_server")  # the dummy credentials in the environment
def test_a_job_whose_upload_fails_is_failed_never_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store goes away mid-run (a moto server of this test's own, stopped once the first job is
    recorded done): the jobs after it fail with the upload named, none is recorded done, the run reports
    that its last ledger rows stayed on the driver's disk, and they say so there.

    The stop waits for j0's done row, not for its sidecar in the bucket: the sidecar is listed before the
    store has confirmed it (objects.py reads it back), and a store stopped in between rightly fails j0 too
    (CI saw it once). j1 renders 2.5 s, time for the stop to land before j1's upload on a loaded machine."""
    server, proc = start_server()
    try:
        bucket = server.make_bucket("doomed")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retry setting: fail at once, not in 6 s
        manifest = write_manifest(tmp_path / "m", DOOMED, "clips.yaml")
        scratch = tmp_path / "scratch"
        args = _args(manifest, f"{bucket}/runs", scratch, f"output.endpoint_url={server.endpoint}")
        mirror = scratch / "driver" / scratch_key(f"{bucket}/runs/clips")

        trouble: list[BaseException] = []

        def stop_after_first() -> None:
            try:
                wait_until(lambda: _recorded_done(mirror, "j0"), 60, "j0 recorded done", poll_s=0.02)
            except BaseException as exc:  # reported below: a thread's failure would otherwise go unseen
                trouble.append(exc)
            stop_server(proc)

        stopper = threading.Thread(target=stop_after_first)
        stopper.start()
        code = run(compose_app(*args), REPO_ROOT)
        stopper.join()
    finally:
        stop_server(proc)
    assert not trouble, trouble
    assert code == 2
    err = capsys.readouterr().err
    assert "the last ledger rows could not be uploaded" in err
    rows = read_rows(mirror).to_pylist()
    final = {r["job_name"]: r for r in rows if r["row_kind"] == "job" and r["status"] != "running"}
    assert final["j0"]["status"] == "done"
    for name in ("j1", "j2"):
        assert final[name]["status"] == "failed" and "upload of" in final[name]["error"], final[name]
        assert "not recorded done" in final[name]["error"]
    assert not list((scratch / "runs").glob("*/generated/*"))  # scratch holds no job once it is over


def test_no_credential_is_written_to_any_file_or_log(s3_bucket: str, tmp_path: Path) -> None:
    """A launch with its credentials in the environment (as the AWS tools expect them), verbose logs on:
    neither the key id, the secret nor the session token appears in any object of the run dir (ledger,
    sidecars, config.yaml, overrides.yaml, contact sheet), in the node's scratch, or in the output."""
    key, secret, token = f"AKIA{secrets.token_hex(8).upper()}", secrets.token_hex(20), secrets.token_hex(24)
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
    manifest = _manifest(tmp_path, 2, 0)
    scratch = tmp_path / "scratch"
    proc = _cli(
        _args(manifest, f"{s3_bucket}/runs", scratch, "verbose=true", "output.keep_chunks=true"),
        env,
        tmp_path,
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    objects = bucket_objects(f"{s3_bucket}/runs/clips")
    assert {"config.yaml", "overrides.yaml", "ledger.parquet"} <= set(objects)
    written = [*objects.values(), output.encode()]
    written += [p.read_bytes() for p in scratch.rglob("*") if p.is_file()]
    for value in (key, secret, token):
        assert not [blob for blob in written if value.encode() in blob]
