"""A private Ray's undertaker: a tiny process that outlives a driver killed with -9 and takes its Ray along.

`ray.init` starts the private Ray's daemons (GCS, raylet, agents, workers) in sessions of their own, so
they survive a driver that dies without running `close()` (kill -9, the OOM killer), and its temp dir stays
behind. `start_reaper` launches this module as a child in its own session (a terminal's Ctrl-C does not
reach it); it polls its parent, and once the parent is gone it SIGKILLs every process whose command line
names the private Ray's temp dir and removes that dir. A clean `close()` kills the reaper first. Must not
touch a Ray it did not start (only the temp dir the runner created is matched) nor import Ray.

    python -m ltx2_batch.runners.reaper <driver pid> <temp dir>
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.2
_GIVE_UP_S = 30.0


def ray_processes(temp_dir: str) -> list[int]:
    """Pids (other than ours) whose command line mentions `temp_dir`: the private Ray's processes."""
    needle = temp_dir.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def reap(temp_dir: str) -> int:
    """SIGKILL the private Ray's processes until none is left (or 30 s pass), then remove its temp dir.
    Returns how many processes were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + _GIVE_UP_S
    while time.monotonic() < deadline:
        pids = ray_processes(temp_dir)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(POLL_S)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return len(killed)


def start_reaper(temp_dir: str) -> subprocess.Popen[bytes]:
    """Launch the reaper for this process's private Ray (call right after the Ray started)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ltx2_batch.runners.reaper", str(os.getpid()), temp_dir],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )


def stop_reaper(process: subprocess.Popen[bytes] | None) -> None:
    """The driver is shutting its Ray down itself: the reaper is not needed."""
    if process is None:
        return
    with contextlib.suppress(OSError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        process.wait(timeout=5)


def main(argv: list[str]) -> int:
    """Wait while the driver is this process's parent, then reap the private Ray's processes and temp dir."""
    driver, temp_dir = int(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the driver's death (or a SIGKILL from it) ends us
    while os.getppid() == driver:
        time.sleep(POLL_S)
    reap(temp_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
