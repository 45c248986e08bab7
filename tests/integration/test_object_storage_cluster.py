"""A Ray cluster without a shared disk renders into one bucket, and a node's death costs no finished chunk.

Two render nodes on loopback (joined to the session's cluster), each started from a working dir of its
own with a scratch folder of its own (`$LTX2_BATCH_SCRATCH`, as each machine of a cluster would set it)
and no folder in common with the driver or each other: the bucket (moto's server, tests/fixtures/s3.py)
is the only shared storage. The driver joins as `ray job submit` has it join ($RAY_ADDRESS) and renders
a manifest whose first job is chained (five chunks). Once its second chunk's state is in the bucket, the
node rendering it dies (SIGKILL to its whole process group) and its scratch is deleted: the job resumes on
the other node from the bucket, its finished chunks are not rendered again, and the stitched file is
frames 0..N-1 exactly.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltx2_batch.media.probe import decode_frame_index, read_frames
from ltx2_batch.storage.objects import ObjectStore
from tests.conftest import pids_titled, wait_until, write_manifest
from tests.fixtures.ray import ClusterNode, RayCluster
from tests.fixtures.s3 import bucket_objects

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MANIFEST = """
defaults: {width: 32, height: 32, upscale: {spatial: false}, pipeline: distilled, audio: true}
jobs:
  - {name: walk, prompt: "A long walk along the beach", num_frames: 76, seed: 3, tags: {fake_render_s: "0.8"}}
  - {name: cat, prompt: "A cat walks on a sunny street.", num_frames: 9, seed: 1}
"""


def test_a_chained_job_resumes_on_another_node_from_the_bucket(
    s3_bucket: str, tmp_path: Path, ray_cluster: RayCluster
) -> None:
    """Two render nodes join the session's cluster with two logical GPUs each, and each actor asks for two:
    only they can render (the head has one), and killing one leaves the head and the session alone."""
    url = f"{s3_bucket}/runs/clips"
    nodes = {name: _node(ray_cluster, tmp_path, name) for name in ("a", "b")}
    try:
        driver = tmp_path / "driver"  # the manifest exists here only: nodes read nothing but the bucket
        write_manifest(driver, MANIFEST, "clips.yaml")
        env = {**ray_cluster.env, "PYTHONUNBUFFERED": "1", "LTX2_BATCH_SCRATCH": str(tmp_path / "scratch")}
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "ltx2_batch", "manifest=clips.yaml", "model=fake", "engine=ray",
                "engine.num_workers=1", "engine.gpus_per_worker=2", "engine.node_ip_address=127.0.0.1",
                f"output.root={s3_bucket}/runs", "chaining.chunk_frames=25", "chaining.overlap_frames=8",
                "progress=false",
            ],
            cwd=driver, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            stored, rendering = _kill_the_rendering_node(ObjectStore(url), nodes)
            output, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, output[-4000:]
        survivor = nodes["b" if rendering == "a" else "a"][1]
        assert not list(survivor.glob("runs/*/generated/*"))  # published and cleared
    finally:
        for node, _ in nodes.values():
            node.kill()
    objects = bucket_objects(url)
    rows = pq.read_table(io.BytesIO(objects["ledger.parquet"])).to_pylist()
    _check_the_ledger(rows, stored)
    done = next(
        r for r in rows if r["row_kind"] == "job" and r["status"] == "done" and r["job_name"] == "walk"
    )
    local = tmp_path / "walk.mp4"
    local.write_bytes(objects[str(done["output_path"]).removeprefix(f"{url}/")])
    assert [decode_frame_index(f) for f in read_frames(local)] == list(range(76))
    assert not [name for name in objects if name.startswith(("chunks/", "leases/", "ledger/"))]
    assert [p.name for p in driver.iterdir()] == ["clips.yaml"]  # no local `s3:` folder


def _node(cluster: RayCluster, tmp_path: Path, name: str) -> tuple[ClusterNode, Path]:
    """A render node started from its own working dir, with its own scratch (as its own machine)."""
    work, scratch = tmp_path / f"node-{name}", tmp_path / f"scratch-{name}"
    work.mkdir()
    return cluster.add_node(num_gpus=2, cwd=work, env={"LTX2_BATCH_SCRATCH": str(scratch)}), scratch


def _kill_the_rendering_node(
    store: ObjectStore, nodes: dict[str, tuple[ClusterNode, Path]]
) -> tuple[list[int], str]:
    """Once chunk 1's state is in the bucket: SIGKILL the node whose actor renders, delete its scratch.
    Returns the chunks whose state was in the bucket then, and the node's name."""
    wait_until(
        lambda: any(rel.endswith("chunk_001.json") for rel in store.listing("chunks/")),
        180,
        "the second chunk's state in the bucket",
        poll_s=0.05,
    )
    rendering = [n for n, (node, _) in nodes.items() if pids_titled(b"ray::RenderWorker", session=node.pgid)]
    assert len(rendering) == 1, rendering
    victim, scratch = nodes[rendering[0]]
    assert list(scratch.glob("runs/*/chunks/*/chunk_001.json"))  # it rendered into its own scratch
    victim.kill()
    shutil.rmtree(scratch)
    return sorted(int(rel[-8:-5]) for rel in store.listing("chunks/") if rel.endswith(".json")), rendering[0]


def _check_the_ledger(rows: list[dict[str, object]], stored: list[int]) -> None:
    walk = [r for r in rows if r["job_name"] == "walk"]
    retried = [r for r in walk if r["row_kind"] == "job" and r["status"] == "retried"]
    assert retried and "worker died" in str(retried[0]["error"])
    second = sorted(
        (r for r in walk if r["row_kind"] == "chunk" and r["attempt"] == 2),
        key=lambda r: int(str(r["chunk_index"])),
    )
    assert len(second) == 5
    # Every chunk whose state was in the bucket when the node died, and every chunk the first attempt
    # reported (a chunk is reported once its state is uploaded), is resumed: never rendered again.
    resumed = [r["chunk_index"] for r in second if r["error"] == "resumed from an earlier attempt"]
    reported = {r["chunk_index"] for r in walk if r["row_kind"] == "chunk" and r["attempt"] == 1}
    assert stored[:2] == [0, 1] and set(stored) | reported <= set(resumed), (stored, reported, resumed)
    assert resumed == list(range(len(resumed))) and len(resumed) < 5
    assert all(r["error"] is None for r in second[len(resumed) :])  # the rest rendered on the other node
    done = {r["job_name"]: r for r in rows if r["row_kind"] == "job" and r["status"] == "done"}
    assert sorted(done) == ["cat", "walk"] and done["walk"]["attempt"] == 2
    # each attempt's chunk rows name the worker of that attempt: the dead node's, then its replacement
    first = {r["worker"] for r in walk if r["row_kind"] == "chunk" and r["attempt"] == 1}
    assert first <= {retried[0]["worker"]} and {r["worker"] for r in second} == {done["walk"]["worker"]}
