"""RayRunner.close on a real Ray (the session's, tests/fixtures/ray.py): the progress sink's actor is killed,
a sink whose actor is already gone does not make close() raise, and a runner that joined an initialised Ray
leaves it running."""

from __future__ import annotations

import pytest
import ray

from ltx2_batch.config import EngineConfig, EngineKind
from ltx2_batch.runners.progress_sink import ProgressSink
from ltx2_batch.runners.ray import RayRunner

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("session_ray")]


def _runner_with_sink() -> tuple[RayRunner, object]:
    # close() never reads the worker or run spec: no pool is attached here
    runner = RayRunner(EngineConfig(kind=EngineKind.ray), worker=None, run=None)  # type: ignore[arg-type]
    sink = ray.remote(ProgressSink).options(num_cpus=0).remote()
    runner._sink = sink  # what _open sets once connected
    return runner, sink


def test_close_kills_the_sink() -> None:
    runner, sink = _runner_with_sink()
    assert ray.get(sink.take.remote(), timeout=60) == []  # alive, and empty
    runner.close()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(sink.take.remote(), timeout=60)


def test_close_survives_a_sink_whose_actor_is_gone() -> None:
    runner, sink = _runner_with_sink()
    ray.kill(sink, no_restart=True)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(sink.take.remote(), timeout=60)
    runner.close()
    assert runner._sink is None
    assert ray.is_initialized()  # joined, not started: close() leaves the session's Ray alone
