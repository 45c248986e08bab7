"""One writer per output dir: the flock a run holds on `<output_dir>/writer.lock` while it writes there.

Two identical launches into one output dir would render every job twice, and one launch's stitch would
delete chunk files the other still reads. So a run takes an exclusive, non-blocking flock before it writes
anything, and a second launch is refused at once with a message naming the holder (pid, start time).
Shards (`shard=i/n`) render disjoint jobs, so they may share a dir: each takes the main lock shared plus an
exclusive lock of its own shard (named by the shard's one spelling, so `00/2` is `0/2`), which keeps out an
unsharded run and a second launch of the same shard. Shards of one launch share one count: a launch holds
the count's lock (`writer-shards-of-<n>.lock`) shared and is refused while any other count's is held (the
deals of 0/2 and 0/3 overlap, so together they would render jobs twice). The kernel drops a flock when its
process dies, so a run killed with -9 leaves no stale lock; the lock files stay (deleting one would race
with a launch that just opened it). Must not decide what a run renders.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ltx2_batch.core.shard import Shard
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
        raise busy_error(
            str(path.parent), _holder(path), what, "a killed run releases the lock at once"
        ) from None
    return fd


def busy_error(where: str, holder: str, what: str, release: str) -> ConfigError:
    """The refusal of a second writer (a disk's flock or a bucket's lease); `holder` is " (who)" or ""."""
    return ConfigError(
        f"another ltx2-batch run is writing {where}{holder}: {what}. Wait for it to finish (or stop it; "
        f"{release}), or choose another output.run_name; shards of one launch may share a dir with shard=i/n"
    )


def other_count_error(where: str, other: str, shard: Shard) -> ConfigError:
    """The refusal of a shard while launches sharded into another count write the same dir."""
    return ConfigError(
        f"launches with shard=i/{other} are writing {where}; shard={shard} would deal the same jobs "
        f"differently and render some twice. Use shard=<i>/{other} for this output dir, or another "
        "output.run_name"
    )


def _stamp(fd: int, shard: str | None) -> None:
    """Who holds the lock, for the refusal message of the next launch (informational only)."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"pid {os.getpid()}, started {started}" + (f", shard {shard}" if shard else "")
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


@contextlib.contextmanager
def hold_output_dir(output_dir: Path, shard: Shard | None = None) -> Iterator[None]:
    """Hold the output dir's writer lock for the duration of the block; ConfigError if another run has it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        main = output_dir / LOCK_NAME
        if shard is None:
            _stamp(_take(main, fcntl.LOCK_EX, stack, "one run per output dir"), None)
        else:
            _take(main, fcntl.LOCK_SH, stack, "an unsharded run holds it")
            _take(output_dir / f"writer-shards-of-{shard.count}.lock", fcntl.LOCK_SH, stack, "")
            _refuse_other_counts(output_dir, shard)
            name = f"writer-shard-{shard.index}-of-{shard.count}.lock"
            what = f"shard {shard} is already running"
            _stamp(_take(output_dir / name, fcntl.LOCK_EX, stack, what), str(shard))
        yield


def _refuse_other_counts(output_dir: Path, shard: Shard) -> None:
    """ConfigError while launches sharded into another count write here (their count lock is held)."""
    for path in sorted(output_dir.glob("writer-shards-of-*.lock")):
        other = path.name.removeprefix("writer-shards-of-").removesuffix(".lock")
        if other == str(shard.count):
            continue
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: nobody runs with that count now
        except BlockingIOError:
            raise other_count_error(str(output_dir), other, shard) from None
        finally:
            os.close(fd)
