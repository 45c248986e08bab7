"""Pending-job selection, sharding and affinity ordering: pure functions over RenderJob values."""

from __future__ import annotations

import dataclasses

import pytest

from ltx2_batch.core.jobs import LoraSpec, PipelineKind, RenderJob, RenderMode, UpscaleSpec, with_job_id
from ltx2_batch.core.scheduler import WorkQueue, affinity_key, split_pending
from ltx2_batch.core.shard import Shard
from ltx2_batch.errors import ConfigError


def make_job(i: int, pipeline: PipelineKind = PipelineKind.TI2VID, lora: str | None = None) -> RenderJob:
    job = RenderJob(
        name=f"job{i}",
        prompt=f"prompt {i}",
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=i,
        pipeline=pipeline,
        mode=RenderMode.VIDEO,
        index=i,
        loras=(LoraSpec(path=lora, sha256=lora),) if lora else (),
    )
    return with_job_id(job, "model-x")


def test_shards_are_disjoint_and_cover_everything() -> None:
    jobs = [make_job(i) for i in range(1000)]
    for n in (1, 2, 3, 7):
        parts = [list(Shard(i, n).dealer().share(jobs)) for i in range(n)]
        ids = [job.job_id for part in parts for job in part]
        assert sorted(ids) == sorted(job.job_id for job in jobs)
        assert len(set(ids)) == len(ids)
        assert {len(p) for p in parts} <= {len(jobs) // n, -(-len(jobs) // n)}  # floor or ceil of N/n


def test_a_24_job_sweep_splits_12_and_12() -> None:
    """The case that split 6/18 under hashing: balanced by position, each launch gets half."""
    jobs = [make_job(i) for i in range(24)]
    assert [len(list(Shard(i, 2).dealer().share(jobs))) for i in range(2)] == [12, 12]
    assert [len(list(Shard(i, 5).dealer().share(jobs))) for i in range(5)] == [5, 5, 5, 5, 4]
    again = [job.job_id for job in list(Shard(1, 5).dealer().share(jobs))]
    assert again == [job.job_id for job in list(Shard(1, 5).dealer().share(jobs))]  # deterministic


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "0/0"])
def test_bad_shard_spec_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_split_pending_skips_done_jobs_with_files_only() -> None:
    jobs = [make_job(i) for i in range(4)]
    done = {jobs[0].job_id, jobs[1].job_id}
    files = {jobs[0].job_id}  # job 1 recorded done but its file vanished: render again
    split = split_pending(jobs, done, lambda j: j.job_id in files)
    assert [j.name for j in split.skipped] == ["job0"]
    assert [j.name for j in split.pending] == ["job1", "job2", "job3"]
    forced = split_pending(jobs, done, lambda _job: True, force=True)
    assert len(forced.pending) == 4 and not forced.skipped


def test_duplicate_jobs_render_once() -> None:
    job = make_job(1)
    twin = dataclasses.replace(job, name="twin", index=7)
    assert twin.job_id == job.job_id
    assert len(split_pending([job, twin], set(), lambda _job: False).pending) == 1


def test_work_queue_prefers_warm_group_and_never_starves() -> None:
    a = [make_job(i, PipelineKind.DISTILLED) for i in range(3)]
    b = [make_job(10 + i, PipelineKind.TI2VID, lora="style") for i in range(5)]
    queue = WorkQueue([a[0], b[0], a[1], b[1], a[2], b[2], b[3], b[4]])
    first = queue.take()  # cold worker: head of the largest group
    assert first is not None and affinity_key(first) == affinity_key(b[0])
    warm = affinity_key(a[0])
    taken = [queue.take(warm) for _ in range(3)]
    assert [j.name for j in taken if j] == ["job0", "job1", "job2"]
    rest = [queue.take(warm) for _ in range(4)]  # warm group empty: falls back, no idling
    assert all(j is not None for j in rest) and queue.take() is None


def test_retry_goes_to_front_of_its_group() -> None:
    jobs = [make_job(i) for i in range(3)]
    queue = WorkQueue(jobs)
    head = queue.take()
    queue.push_front(jobs[2])
    assert head is not None and head.name == "job0"
    nxt = queue.take(affinity_key(jobs[0]))
    assert nxt is not None and nxt.name == "job2"


def test_affinity_separates_lora_sets_and_upscalers() -> None:
    base = make_job(0)
    assert affinity_key(base) != affinity_key(make_job(0, lora="x"))
    assert affinity_key(base) != affinity_key(dataclasses.replace(base, upscale=UpscaleSpec(temporal=True)))


def test_fields_a_distilled_pipeline_ignores_do_not_change_its_id() -> None:
    from ltx2_batch.core.jobs import GuiderSpec, compute_job_id

    distilled = make_job(1, PipelineKind.DISTILLED)
    same = dataclasses.replace(
        distilled,
        num_inference_steps=30,
        negative_prompt="blurry",
        video_guider_params=GuiderSpec(cfg_scale=5.0),
    )
    assert compute_job_id(same, "model-x") == distilled.job_id
    guided = make_job(1, PipelineKind.TI2VID)
    assert compute_job_id(dataclasses.replace(guided, num_inference_steps=30), "model-x") != guided.job_id


def test_a_queue_extended_batch_by_batch_keeps_a_shot_behind_its_unfinished_predecessor() -> None:
    first, second, third = make_job(1), make_job(2), make_job(3)
    follows = dataclasses.replace(make_job(4), after=first.job_id)  # in the next batch
    queue = WorkQueue([first, second])
    assert queue.take() is first  # in flight: not finished
    queue.extend([follows, third])
    assert (queue.runnable, queue.parked) == (2, 1)
    assert queue.finished(first.job_id, ok=True) == []
    assert queue.runnable == 3 and queue.parked == 0
    done_before = dataclasses.replace(make_job(5), after="finished-in-an-earlier-run")
    queue.extend([done_before])
    assert queue.runnable == 4  # its predecessor is not in this queue: done before
