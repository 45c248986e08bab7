"""Progress as people expect it: live bars under a terminal, plain lines in a log, no library noise.

The command runs on the tiny model under a pseudo-terminal (Python's `pty`): the terminal is the subject,
and torch, transformers and the LTX packages are the noise it must not show. A log (stderr not a terminal)
is checked in process, on the fake model: the lines are the driver's, whatever renders.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, compose_app, write_manifest

# cat: the default two-stage recipe (its step bars); long_walk: two 49-frame windows at 32x32 (its chunk bar)
MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: long_walk, prompt: "A long walk on the beach.", seed: 2, num_frames: 73, width: 32, height: 32,
     upscale: {spatial: false}}
"""
NOISE = ("slow image processor", "Using LTX_2_PARAMS", "UserWarning", "FutureWarning")


def _under_pty(cmd: list[str], cwd: Path, env: dict[str, str], deadline_s: float) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as its stdin/stdout/stderr; return its exit code and all it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.slow
def test_a_terminal_gets_live_bars_and_no_library_noise(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, MANIFEST, "walks.yaml")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={tmp_path / 'out'}"]
    cmd.append("chaining.chunk_frames=49")
    code, drawn = _under_pty(cmd, tmp_path, env, deadline_s=600)
    assert code == 0, drawn[-3000:]
    assert "\x1b[" in drawn  # cursor control: a live display, not lines
    assert "━" in drawn  # rich's bar
    assert "jobs" in drawn and "2/2" in drawn  # the run bar: done/total
    assert "chunk 1/2" in drawn  # the chained job's chunk bar
    # the step bar under a job line: distilled is 8 steps at half size, then 3 at full size (two-stage)
    assert "steps, stage 1/2" in drawn and "8/8" in drawn
    assert "steps, stage 2/2" in drawn and "3/3" in drawn
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)  # without colours and cursor moves
    assert "done      cat (" in text and "done      long_walk (" in text  # finished jobs scroll above
    assert "| jobs " in drawn  # the summary table after the bars
    assert not [n for n in NOISE if n in drawn]


def test_a_log_gets_plain_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, MANIFEST, "walks.yaml")
    app = compose_app(
        f"manifest={manifest}", f"output.root={tmp_path / 'out'}", "model=fake", "chaining.chunk_frames=49"
    )
    assert run(app, REPO_ROOT) == 0
    done = capsys.readouterr()
    lines = done.err.splitlines()
    assert lines[0] == "[0/2] start     cat on local-0"
    assert any(line.startswith("[1/2] done      cat (") for line in lines)
    assert "[1/2]   chunk 2/2 of long_walk" in done.err
    assert lines[-1].startswith("[2/2] done      long_walk (") and lines[-1].endswith("ETA 0.0s")
    assert "\x1b[" not in done.err + done.out and "━" not in done.err
    assert not [line for line in lines if "step" in line]  # no line per denoising step (the fake has 8)
    assert len(lines) == 6, lines  # per job a start and an end, and long_walk's 2 chunks: no more
    assert "| throughput             |" in done.out  # the summary table, its columns fit the values
