"""A local Ray that outlives a launch: what a warm pool runs on when there is no cluster (a one-GPU box).

A private Ray (`ray.init` in the driver) ends with its driver, and every detached actor with it, so a pool
needs a Ray of its own. `ensure_local_ray` finds the one this tool started (its record in the state home:
GCS address, process group, temp dir), checks it still answers, or starts one with `ray start --head` in a
session of its own, on free loopback ports, and records it; a lock file keeps two first launches from
starting two. `stop_local_ray` (`ltx2-batch pool down`) ends exactly that process group and any process
naming its temp dir, then removes the record: never `ray stop`, which would end every Ray on the machine.
The same command by hand: `ray start --head --port=6379 --disable-usage-stats`, then `engine.address=auto`.
Must not: import Ray (the `ray` command starts it), or touch a Ray this tool did not start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ltx2_batch.config import EngineConfig
from ltx2_batch.core.tool_paths import state_home
from ltx2_batch.errors import FatalBackendError
from ltx2_batch.runners.reaper import reap

RECORD = "local_ray.json"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 3.0  # a grace for its daemons to flush logs; what is left then is killed (the pool is gone)
POLL_S = 0.1


@dataclass(frozen=True)
class LocalRay:
    """The `ray start` this tool ran: where its GCS listens, its process group, its temp dir."""

    address: str
    pgid: int
    temp_dir: str

    @property
    def port(self) -> int:
        """The GCS port, from the recorded address."""
        return int(self.address.rpartition(":")[2])


def _record(state: Path) -> Path:
    return state / RECORD


def read_record(state: Path | None = None) -> LocalRay | None:
    """The recorded local Ray, or None without a readable record (it may no longer answer either way)."""
    path = _record(state or state_home())
    try:
        return LocalRay(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def alive(local: LocalRay) -> bool:
    """Its process group has a process left and its GCS accepts a connection."""
    try:
        os.killpg(local.pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with socket.create_connection(("127.0.0.1", local.port), timeout=2.0):
            return True
    except OSError:
        return False


def running_local_ray(state: Path | None = None) -> LocalRay | None:
    """The local Ray this tool started, when it still runs."""
    local = read_record(state)
    return local if local is not None and alive(local) else None


def ensure_local_ray(engine: EngineConfig, state: Path | None = None) -> tuple[LocalRay, bool]:
    """The running local Ray, or a new one (True: started by this call)."""
    state = state or state_home()
    state.mkdir(parents=True, exist_ok=True)
    with _locked(state):
        found = running_local_ray(state)
        if found is not None:
            return found, False
        stale = read_record(state)
        if stale is not None:  # its record outlived it (a reboot, a kill): clean up what is left
            stop_local_ray(stale, state)
        local = _start(engine)
        _record(state).write_text(json.dumps(asdict(local)))
        return local, True


def stop_local_ray(local: LocalRay, state: Path | None = None) -> None:
    """End its process group (SIGTERM, then SIGKILL after STOP_TIMEOUT_S), any process left naming its temp
    dir, the temp dir itself and the record."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(local.pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _group_alive(local.pgid) and time.monotonic() < deadline:
        time.sleep(POLL_S)  # polling the process group under a deadline
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(local.pgid, signal.SIGKILL)
    reap(local.temp_dir)  # workers Ray started in sessions of their own still name the temp dir
    path = _record(state or state_home())
    if read_record(state) == local:
        path.unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    with (state / "local_ray.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ray_command() -> str:
    """The `ray` command of this interpreter's environment (then the PATH's)."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def start_command(engine: EngineConfig, temp_dir: str, gcs_port: int) -> list[str]:
    """`ray start --head` on loopback, every port free (another Ray on this machine keeps its own)."""
    args = [
        ray_command(), "start", "--head", f"--port={gcs_port}", "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}", "--include-dashboard=false", "--disable-usage-stats",
        f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
    ]  # fmt: skip
    if engine.num_cpus is not None:
        args.append(f"--num-cpus={engine.num_cpus}")
    if engine.num_gpus is not None:
        args.append(f"--num-gpus={engine.num_gpus}")
    return args


def _start(engine: EngineConfig) -> LocalRay:
    temp_dir = engine.temp_dir or tempfile.mkdtemp(prefix="ltx2r", dir="/tmp")  # short: socket path limit
    gcs_port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.setdefault("RAY_AUTH_MODE", "disabled")  # loopback only: no token written to ~/.ray
    proc = subprocess.Popen(
        start_command(engine, temp_dir, gcs_port),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its daemons keep this process group: `pool down` ends exactly them
    )
    try:
        output, _ = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        output = b"(no answer within the start timeout)"
    local = LocalRay(f"127.0.0.1:{gcs_port}", proc.pid, temp_dir)
    if proc.returncode != 0:
        stop_local_ray(local)
        tail = output.decode(errors="replace").strip().splitlines()[-3:]
        raise FatalBackendError(f"could not start a local Ray for the pool: {'; '.join(tail)}")
    return local
