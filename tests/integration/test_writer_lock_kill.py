"""A run killed with -9 leaves no stale writer lock: the kernel drops the flock with the process, so the next
writer gets the output dir at once (the in-process lock rules are tests/unit/test_writer_lock.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ltx2_batch.errors import ConfigError
from ltx2_batch.storage.writer_lock import LOCK_NAME, hold_output_dir


def test_kill_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from ltx2_batch.storage.writer_lock import hold_output_dir\n"
            f"with hold_output_dir(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"), hold_output_dir(out):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with hold_output_dir(out):  # at once: no stale lock to clean up
        assert (out / LOCK_NAME).is_file()
