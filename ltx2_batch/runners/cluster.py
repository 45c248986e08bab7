"""Which Ray to join, and whether it answers, decided before `ray.init` can hang on it.

Owns: the cluster address of a run (`engine.address`, else `$RAY_ADDRESS`, which `ray job submit` sets
for the command it launches; neither: a private Ray) and a bounded reachability check of that address, so
an unreachable cluster is one error naming the address tried, within seconds, instead of Ray's own
ConnectionError traceback after about a minute.
`ray_reason` puts Ray's own words for a failed join on one line: Ray Client's server-side failures arrive
as a header line ending in a colon and the server's traceback, so their first line alone said nothing.
Must not: import Ray or start anything; it opens (and closes) one TCP connection at most.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from ltx2_batch.config import EngineConfig
from ltx2_batch.errors import ConfigError

RAY_ADDRESS_ENV = "RAY_ADDRESS"
PROBE_TIMEOUT_S = 5.0


class AddressKind(str, Enum):
    """How a run reaches Ray: a private one of its own, or a cluster by one of Ray's three address forms."""

    private = "private"  # no address: start a Ray for this run
    auto = "auto"  # the cluster `ray start` left on this node (Ray finds it from its session files)
    gcs = "gcs"  # host:port of a head node's GCS (port 6379 by default)
    client = "client"  # ray://host:port (Ray Client, port 10001 by default)


@dataclass(frozen=True)
class ClusterAddress:
    """The Ray a run joins, where the address came from, and the host and port the reachability check uses."""

    kind: AddressKind
    text: str | None  # what ray.init is given (None: private)
    origin: str  # where it came from, for messages: "engine.address" or "$RAY_ADDRESS"
    host: str = ""
    port: int = 0


def cluster_address(engine: EngineConfig, environ: Mapping[str, str] | None = None) -> ClusterAddress:
    """`engine.address` wins over `$RAY_ADDRESS`; raises ConfigError for an address ray.init cannot take."""
    env = os.environ if environ is None else environ
    if engine.address:
        text, origin = engine.address.strip(), "engine.address"
    elif env.get(RAY_ADDRESS_ENV):
        text, origin = env[RAY_ADDRESS_ENV].strip(), f"${RAY_ADDRESS_ENV}"
    else:
        return ClusterAddress(AddressKind.private, None, "none")
    if text == "auto":
        return ClusterAddress(AddressKind.auto, text, origin)
    if text.startswith(("http://", "https://")):
        raise ConfigError(
            f"{origin}={text} is a dashboard (job submission) address; a driver joins the cluster at the "
            "head's GCS address (host:6379) or ray://host:10001: launch with `ray job submit --address "
            f"{text} -- ltx2-batch ...` (it sets {RAY_ADDRESS_ENV} for the command), or pass that address"
        )
    kind = AddressKind.client if text.startswith("ray://") else AddressKind.gcs
    host, sep, port = text.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"{origin}={text}: expected host:port (the head's GCS, e.g. 10.0.0.5:6379), ray://host:port or "
            "auto"
        )
    return ClusterAddress(kind, text, origin, host.strip("[]"), int(port))


def unreachable(address: ClusterAddress, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the cluster at `address` cannot be joined (None: it accepts connections, or there is nothing to
    probe: private, auto)."""
    if address.kind in (AddressKind.private, AddressKind.auto):
        return None
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            return None
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        return (
            f"cannot reach the Ray cluster at {address.text} (from {address.origin}): {reason} after at most "
            f"{timeout_s:.0f}s; start it with `ray start --head`, or fix/unset {address.origin}"
        )


REASON_CHARS = 600


def ray_reason(message: str) -> str:
    """One line of what Ray said: a traceback's frames dropped, its exception (and the lines after it) kept
    after the text that came before it, blank lines dropped, lines joined with "; "."""
    lines = [line.rstrip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        head, frames = lines[: starts[0]], lines[starts[-1] + 1 :]
        # frames and their source lines are indented; the exception starts at the margin
        first = next((i for i, line in enumerate(frames) if not line.startswith(" ")), len(frames))
        lines = head + frames[first:]
    text = "; ".join(
        line.strip().rstrip(":") if i < len(lines) - 1 else line.strip() for i, line in enumerate(lines)
    )
    return text[:REASON_CHARS] if text else "no reason given"
