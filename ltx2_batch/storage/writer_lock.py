"""One writer per output dir: the flock a run holds on `<output_dir>/writer.lock` while it writes there.

Two identical launches into one output dir would render every job twice, and one launch's stitch would
delete chunk files the other still reads. So a run takes an exclusive, non-blocking flock before it writes
anything, and a second launch is refused at once with a message naming the holder (pid, start time).
Shards (`shard=i/n`) render disjoint jobs, so they may share a dir: each takes the main lock shared plus an
exclusive lock of its own shard, which keeps out an unsharded run and a second launch of the same shard.
The kernel drops a flock when its process dies, so a run killed with -9 leaves no stale lock; the lock
file itself stays (deleting it would race with a launch that just opened it). Must not decide what a run
renders.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ltx2_batch.errors import ConfigError

LOCK_NAME = "writer.lock"


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(encoding="utf-8", errors="replace").strip()[:200]
        if text:
            return f" ({text})"
    return ""


def _take(path: Path, mode: int, stack: contextlib.ExitStack, what: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    stack.callback(os.close, fd)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(
            f"another ltx2-batch run is writing {path.parent}{_holder(path)}: {what}. Wait for it to "
            "finish (or stop it; a killed run releases the lock at once), or choose another "
            "output.run_name; shards of one launch may share a dir with shard=i/n"
        ) from None
    return fd


def _stamp(fd: int, shard: str | None) -> None:
    """Who holds the lock, for the refusal message of the next launch (informational only)."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"pid {os.getpid()}, started {started}" + (f", shard {shard}" if shard else "")
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


@contextlib.contextmanager
def hold_output_dir(output_dir: Path, shard: str | None = None) -> Iterator[None]:
    """Hold the output dir's writer lock for the duration of the block; ConfigError if another run has it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        main = output_dir / LOCK_NAME
        if shard is None:
            _stamp(_take(main, fcntl.LOCK_EX, stack, "one run per output dir"), None)
        else:
            _take(main, fcntl.LOCK_SH, stack, "an unsharded run holds it")
            name = f"writer-shard-{shard.replace('/', '-of-')}.lock"
            _stamp(_take(output_dir / name, fcntl.LOCK_EX, stack, f"shard {shard} is already running"), shard)
        yield
