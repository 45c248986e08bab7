"""RayRunner.close on a real Ray (the session's, tests/fixtures/ray.py): the progress queue's actor is killed
even when the queue is empty (an empty Queue is falsy), and a queue whose actor is already gone does not
make close() raise. A runner that joined an initialised Ray leaves it running."""

from __future__ import annotations

import pytest
import ray
from ray.util.queue import Queue

from ltx2_batch.config import EngineConfig, EngineKind
from ltx2_batch.runners.ray import RayRunner

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("session_ray")]


def _runner_with_queue() -> tuple[RayRunner, Queue]:
    # close() never reads the executor spec: no worker is spawned here
    runner = RayRunner(EngineConfig(kind=EngineKind.ray), worker=None, run=None)  # type: ignore[arg-type]
    queue = Queue(actor_options={"num_cpus": 0})
    runner._progress = queue  # what _ensure_workers sets once connected
    return runner, queue


def test_close_kills_the_actor_of_an_empty_queue() -> None:
    runner, queue = _runner_with_queue()
    assert ray.get(queue.actor.qsize.remote()) == 0  # alive, and empty: `bool(queue)` is False
    runner.close()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(queue.actor.qsize.remote(), timeout=60)


def test_close_survives_a_queue_whose_actor_is_gone() -> None:
    runner, queue = _runner_with_queue()
    ray.kill(queue.actor, no_restart=True)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(queue.actor.qsize.remote(), timeout=60)
    runner.close()  # used to raise ActorDiedError from `if self._progress` (len() through ray.get)
    assert runner._progress is None
    assert ray.is_initialized()  # joined, not started: close() leaves the session's Ray alone
