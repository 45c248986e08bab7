"""One writer per run dir on object storage: leases, the bucket's counterpart of writer_lock.py's flocks.

A bucket has no flock, and a process killed with -9 releases nothing. So a writer holds a *lease*: a small
JSON object written with a conditional PUT (If-None-Match: only if absent), naming its holder (host, pid,
run id, shard) and its time to live (`output.lease_ttl_s`). A heartbeat thread rewrites it every quarter of
that (If-Match: only while it is still ours), so the store's own clock (the object's Last-Modified) says
when the holder was last alive, and the store's clock again (the Date of its answer) says whether that was a
whole TTL ago: a reader whose own clock is off judges no lease wrongly (stores without a Date: local time).

    <run dir>/leases/writer.json               an unsharded run
    <run dir>/leases/shard-<i>-of-<n>.json     one per shard of a sharded launch

The rules are the disk's, with the disk's messages: one unsharded writer, or one writer per shard beside
other shards of the same count. A launch writes its own lease first, then looks at the others and backs off
(deleting its own) if one conflicts: two launches racing each see the other, so at worst both are refused,
never both admitted.

A lease is *stale* when its holder missed its heartbeats for a whole TTL (Last-Modified + TTL is past), or
at once when its holder was a process on this machine that no longer exists (host, boot and pid start time
compared): a launch killed with -9 does not block its own resume. A stale lease is taken over with If-Match
on its ETag, so of two launches taking it over only one wins. A holder whose heartbeat is refused (taken
over) or fails for most of a TTL is told (`on_lost`) and its run stops: another launch may write by then.
The lease names the run id, so a compaction knows whose journal parts are still being written
(ledger/parts.py). Must not decide what a run renders.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ltx2_batch.core.shard import Shard
from ltx2_batch.errors import ConfigError, StorageError
from ltx2_batch.storage.objects import ObjectInfo, ObjectStore
from ltx2_batch.storage.writer_lock import busy_error, other_count_error

_log = logging.getLogger(__name__)

LEASE_DIR = "leases"
WRITER = f"{LEASE_DIR}/writer.json"
_GIVE_UP = 0.75  # of the TTL without a successful heartbeat: the holder stops before its lease lapses


def shard_lease(shard: Shard) -> str:
    """The lease object of one shard, named by the shard's one spelling."""
    return f"{LEASE_DIR}/shard-{shard.index}-of-{shard.count}.json"


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def _pid_started(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when unknown): tells a reused pid apart."""
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return ""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lease: what its JSON says."""

    host: str
    boot: str
    pid: int
    pid_started: str
    run_id: str
    shard: str | None
    ttl_s: float
    started: str

    @classmethod
    def me(cls, run_id: str, shard: Shard | None, ttl_s: float) -> Holder:
        """This process as holder: host, boot, pid and its start (to tell it is gone), run, shard, TTL."""
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        pid = os.getpid()
        host = socket.gethostname()
        return cls(
            host, _boot_id(), pid, _pid_started(pid), run_id, str(shard) if shard else None, ttl_s, started
        )

    @classmethod
    def parse(cls, data: bytes | None) -> Holder | None:
        """The holder a lease object names; None when it is not one (damaged, or of another layout)."""
        try:
            raw = json.loads(data or b"")
            return cls(**{name: raw[name] for name in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None

    def body(self) -> bytes:
        """The lease object's JSON bytes."""
        return json.dumps(self.__dict__, sort_keys=True).encode()

    def describe(self) -> str:
        """The holder as refusal messages name it: pid, host, start time, shard."""
        shard = f", shard {self.shard}" if self.shard else ""
        return f"pid {self.pid} on {self.host}, started {self.started}{shard}"

    def gone(self) -> bool:
        """A process of this machine that no longer runs (or whose pid another process took since)."""
        if self.host != socket.gethostname() or not self.boot or self.boot != _boot_id():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's live process
            return False
        return bool(self.pid_started) and _pid_started(self.pid) != self.pid_started


@dataclass(frozen=True)
class LeaseState:
    """A lease object as found: its holder (None: unreadable), ETag, and whether it still binds."""

    holder: Holder | None
    info: ObjectInfo
    live: bool
    expires: datetime | None

    def who(self) -> str:
        """The holder in parentheses, to append to a message; empty when the lease is unreadable."""
        return f" ({self.holder.describe()})" if self.holder else ""


def read_lease(store: ObjectStore, rel: str, ttl_s: float) -> LeaseState | None:
    """The lease at `rel` (None when there is none). `ttl_s` applies when its own is unreadable."""
    info = store.stat(rel)
    if info is None:
        return None
    holder = Holder.parse(store.read(rel))
    ttl = holder.ttl_s if holder else ttl_s
    expires = datetime.fromtimestamp(info.modified.timestamp() + ttl, timezone.utc) if info.modified else None
    now = info.answered or datetime.now(timezone.utc)  # the store's clock, as Last-Modified is: no skew
    lapsed = expires is not None and expires < now
    return LeaseState(holder, info, not (lapsed or (holder is not None and holder.gone())), expires)


def live_leases(store: ObjectStore, ttl_s: float) -> dict[str, LeaseState]:
    """Every lease of the run dir that still binds, by name."""
    found = {}
    for rel in sorted(store.listing(LEASE_DIR)):
        state = read_lease(store, rel, ttl_s)
        if state is not None and state.live:
            found[rel] = state
    return found


def live_run_ids(store: ObjectStore, ttl_s: float) -> set[str]:
    """Runs whose lease still binds: their journals are still being written."""
    return {state.holder.run_id for state in live_leases(store, ttl_s).values() if state.holder}


class Lease:
    """A lease held by this process: renewed by a heartbeat thread until `release`."""

    def __init__(self, store: ObjectStore, rel: str, etag: str, holder: Holder) -> None:
        self.store, self.rel, self.holder = store, rel, holder
        self._etag = etag
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None
        self.on_lost: Callable[[str], None] | None = None

    def start(self) -> None:
        """Start the heartbeat thread, which renews the lease until `release`."""
        self._thread = threading.Thread(target=self._beat, name="ltx2-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        interval = self.holder.ttl_s / 4
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            try:
                etag = self.store.replace(self.rel, self.holder.body(), self._etag)
            except Exception as exc:  # the store is unreachable: keep trying until the lease would lapse
                if time.monotonic() - last_ok > _GIVE_UP * self.holder.ttl_s:
                    self._lose(f"could not renew it for {time.monotonic() - last_ok:.0f} s ({exc})")
                    return
                continue
            if etag is None:
                self._lose("another launch took it over (its heartbeats had stopped for a whole TTL)")
                return
            self._etag, last_ok = etag, time.monotonic()

    def _lose(self, why: str) -> None:
        self.lost = f"lost the writer lease {self.store.url(self.rel)}: {why}"
        _log.error("%s", self.lost)
        if self.on_lost is not None:
            self.on_lost(self.lost)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease while it is still ours (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.lost is None:
            try:
                self.store.delete_if(self.rel, self._etag)
            except Exception as exc:  # it lapses by itself; a failed delete only delays the next launch
                _log.warning(
                    "could not delete the lease %s (%s); it lapses in %.0f s",
                    self.rel,
                    exc,
                    self.holder.ttl_s,
                )
            self.lost = "released"


def _release_note(ttl_s: float) -> str:
    return f"a killed run's lease lapses {ttl_s:g} s after its last heartbeat, at once on the same machine"


def acquire(store: ObjectStore, rel: str, holder: Holder, what: str) -> Lease:
    """Write the lease at `rel`, or take over a stale one; ConfigError naming the holder of a live one."""
    for _ in range(3):  # a lease that vanishes between our attempts: try again
        etag = store.create(rel, holder.body())
        if etag is not None:
            return Lease(store, rel, etag, holder)
        state = read_lease(store, rel, holder.ttl_s)
        if state is None:
            continue
        if state.live:
            raise _busy(store, state, what, holder.ttl_s)
        etag = store.replace(rel, holder.body(), state.info.etag or "")
        if etag is not None:
            _log.warning("took over the stale writer lease %s%s", store.url(rel), state.who())
            return Lease(store, rel, etag, holder)
    raise StorageError(f"could not write the lease {store.url(rel)}: it keeps changing")


def _busy(store: ObjectStore, state: LeaseState, what: str, ttl_s: float) -> ConfigError:
    said = [state.holder.describe()] if state.holder else []
    if state.expires is not None:
        said.append(f"its lease lapses at {state.expires:%H:%M:%S} UTC if it has stopped")
    return busy_error(store.root, f" ({', '.join(said)})" if said else "", what, _release_note(ttl_s))


@contextlib.contextmanager
def hold_bucket_dir(store: ObjectStore, shard: Shard | None, run_id: str, ttl_s: float) -> Iterator[Lease]:
    """Hold the run dir's lease (see the module doc) for the block; ConfigError if another run writes it."""
    holder = Holder.me(run_id, shard, ttl_s)
    if shard is None:
        lease = acquire(store, WRITER, holder, "one run per output dir")
    else:
        lease = acquire(store, shard_lease(shard), holder, f"shard {shard} is already running")
    try:
        _refuse_conflicts(store, shard, lease, ttl_s)
        lease.start()
        yield lease
    finally:
        lease.release()


def _refuse_conflicts(store: ObjectStore, shard: Shard | None, mine: Lease, ttl_s: float) -> None:
    """With our own lease written: the other live leases this launch may not run beside."""
    for rel, state in live_leases(store, ttl_s).items():
        if rel == mine.rel:
            continue
        if shard is None:
            raise _busy(store, state, "one run per output dir", ttl_s)
        if rel == WRITER:
            raise _busy(store, state, "an unsharded run holds it", ttl_s)
        count = rel.rsplit("-of-", 1)[-1].removesuffix(".json")
        if count != str(shard.count):
            raise other_count_error(store.root, count, shard)
