"""Which cluster a run joins (engine.address, else $RAY_ADDRESS) and the refusals that come before Ray."""

from __future__ import annotations

import re
import socket

import pytest

from ltx2_batch.config import EngineConfig, EngineKind
from ltx2_batch.errors import ConfigError
from ltx2_batch.run.checks import check_engine
from ltx2_batch.runners.cluster import AddressKind, cluster_address, ray_reason, unreachable


def test_engine_address_wins_over_the_environment() -> None:
    env = {"RAY_ADDRESS": "10.0.0.5:6379"}
    assert cluster_address(EngineConfig(), {}).kind is AddressKind.private
    from_env = cluster_address(EngineConfig(), env)
    assert (from_env.kind, from_env.host, from_env.port, from_env.origin) == (
        AddressKind.gcs, "10.0.0.5", 6379, "$RAY_ADDRESS",
    )  # fmt: skip
    given = cluster_address(EngineConfig(address="ray://head:10001"), env)
    assert (given.kind, given.host, given.port, given.origin) == (
        AddressKind.client, "head", 10001, "engine.address",
    )  # fmt: skip
    assert cluster_address(EngineConfig(address="auto"), env).kind is AddressKind.auto


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:8265", "is a dashboard (job submission) address"),
        ("head", "expected host:port"),
        ("head:port", "expected host:port"),
    ],
)
def test_addresses_ray_init_cannot_take_are_refused(address: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        cluster_address(EngineConfig(address=address), {})
    assert f"engine.address={address}" in str(err.value)


def test_a_closed_port_is_unreachable_and_a_listening_one_is_not() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert unreachable(cluster_address(EngineConfig(address=f"127.0.0.1:{port}"), {})) is None
    problem = unreachable(cluster_address(EngineConfig(address=f"127.0.0.1:{port}"), {}), timeout_s=2)
    assert problem is not None
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port} (from engine.address)" in problem


def test_check_engine_probes_only_for_engine_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    check_engine(EngineConfig(kind=EngineKind.local))  # a local run ignores RAY_ADDRESS
    with pytest.raises(ConfigError, match=r"invalid engine config:\n  cannot reach the Ray cluster"):
        check_engine(EngineConfig(kind=EngineKind.ray))


def test_ray_reason_keeps_what_a_ray_client_server_said_after_its_header() -> None:
    """Ray Client's `ConnectionAbortedError(f"Initialization failure from server:\\n{response.msg}")`
    (ray/util/client/worker.py) carries the server's traceback: its first line alone ends in a colon."""
    message = (
        "Initialization failure from server:\n"
        "Traceback (most recent call last):\n"
        '  File "/ray/util/client/server/proxier.py", line 680, in Datapath\n'
        "    raise RuntimeError(\n"
        "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for details.\n"
    )
    assert ray_reason(message) == (
        "Initialization failure from server; RuntimeError: Starting Ray client server failed. See "
        "ray_client_server_23000.err for details."
    )
    mismatch = "Version mismatch: The cluster was started with:\n    Ray: 2.9.0\n    Python: 3.10.4\n"
    assert (
        ray_reason(mismatch) == "Version mismatch: The cluster was started with; Ray: 2.9.0; Python: 3.10.4"
    )
    assert ray_reason("ray client connection timeout") == "ray client connection timeout"
    assert ray_reason("\n\n") == "no reason given"
