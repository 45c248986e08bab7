"""Temporary folders in a node's scratch that a killed process does not leak for good.

A driver reading a bucket copies its ledger into a temporary folder (a snapshot, a check of a done job's
objects, a compaction) and removes it afterwards; a kill -9 skips the removal, and a ledger of a million jobs
is a snapshot of a hundred megabytes, left behind by every killed launch. Each folder's name says which
process on which host made it (`read-4242@node-7-x1y2z3ab`), so the next launch on that host removes the
folders of processes that are gone, and never those of another host sharing the scratch folder (its process
ids mean nothing here) or of a live process.
Must not: remove anything but folders named this way.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_NAME = re.compile(r"^(?P<kind>[a-z]+)-(?P<pid>\d+)@(?P<host>[A-Za-z0-9._]+)-[A-Za-z0-9_]{8}$")


def this_host() -> str:
    """The host's name as folder names carry it (letters, digits, dots and underscores only)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def scratch_temp(parent: Path, kind: str) -> Path:
    """A new private folder in `parent`, named for `kind`, this process and this host."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}@{this_host()}-", dir=parent))


@contextlib.contextmanager
def scratch_folder(parent: Path, kind: str) -> Iterator[Path]:
    """`scratch_temp`, removed when the block ends (a kill -9 leaves it to `sweep_orphans`)."""
    folder = scratch_temp(parent, kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def orphan(name: str, host: str, alive: frozenset[int] | None = None) -> bool:
    """Whether a folder called `name` was made on `host` by a process that is gone (`alive`: the process ids
    to treat as running, for tests; the system's otherwise)."""
    match = _NAME.match(name)
    if match is None or match["host"] != host:
        return False
    pid = int(match["pid"])
    return pid not in alive if alive is not None else not _running(pid)


def sweep_orphans(parent: Path) -> list[Path]:
    """Remove the folders in `parent` that processes of this host made and left when they died."""
    host, removed = this_host(), []
    with contextlib.suppress(FileNotFoundError):
        for entry in parent.iterdir():
            if entry.is_dir() and orphan(entry.name, host):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True
