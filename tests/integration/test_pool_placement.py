"""Where a pool's owner lives on a cluster of several nodes.

The owner leases every worker of its pool; if it dies, the pool stops serving (`its owner is gone`). Ray
places a zero-CPU actor on any node, a render node among them, and render nodes are the ones that go away
(spot machines, a node killed under a chained job: CI saw that test end with the pool's owner gone). So a
shared pool's owner is pinned to the head node, and a launch's private one to its driver's node. Each owner
is asked for here a few times, under fresh names, on a cluster with a second node: without the pinning some
land on the second node.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.ray import RayCluster

pytestmark = pytest.mark.ray

OWNERS = 6  # per kind; each lands on one of two nodes if unpinned, so all on one node by chance is 1 in 32

DRIVER = f"""
import json, ray
from ray.util.state import get_actor
from ltx2_batch.runners.pool import HEAD_NODE_RESOURCE, open_owner

ray.init(log_to_driver=False)
head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and HEAD_NODE_RESOURCE in n["Resources"])
placed = {{"head": head, "driver": ray.get_runtime_context().get_node_id(), "shared": [], "private": []}}
for i in range({OWNERS}):
    for kind, detached in (("shared", True), ("private", False)):
        owner = open_owner(f"placement-{{kind}}-{{i}}", "test", detached=detached)
        ray.get(owner.__ray_ready__.remote(), timeout=60)
        placed[kind].append(get_actor(owner._actor_id.hex()).node_id)
        ray.kill(owner)
print("PLACED " + json.dumps(placed))
"""


@pytest.mark.slow  # a second `ray start` node and a driver subprocess
def test_a_shared_pools_owner_lives_on_the_head_and_a_private_ones_on_the_driver_node(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    node = ray_cluster.add_node(num_cpus=2, cwd=tmp_path)
    try:
        ran = subprocess.run(
            [sys.executable, "-c", DRIVER],
            capture_output=True, text=True, timeout=300, env=ray_cluster.env, cwd=tmp_path, check=False,
        )  # fmt: skip
    finally:
        node.kill()
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    line = next(line for line in ran.stdout.splitlines() if line.startswith("PLACED "))
    placed = json.loads(line.removeprefix("PLACED "))
    assert placed["shared"] == [placed["head"]] * OWNERS
    assert placed["private"] == [placed["driver"]] * OWNERS
