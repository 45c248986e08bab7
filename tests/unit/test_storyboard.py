"""Storyboard manifests: narrative prefixes, element injection, scene links and their effect on ids."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.core.scheduler import WorkQueue
from ltx2_batch.core.shard import Shard
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.storyboard import Element, inject_elements
from tests.manifests import manifest_jobs


def _load(path: Path) -> tuple[RenderJob, ...]:
    return manifest_jobs(path, model_fingerprint="m")


def test_example_storyboard_links_shots_and_prefixes_prompts() -> None:
    jobs = _load(BUNDLED_MANIFESTS / "examples/storyboard.yaml")
    park1, park2, harb1, harb2 = jobs
    assert (park1.scene, park2.scene, harb1.scene) == ("park", "park", "harbour")
    assert park1.after == "" and harb1.after == ""
    assert park2.after == park1.job_id and harb2.after == harb1.job_id
    assert park1.prompt == "max_corgi runs across a green park"
    assert park2.prompt == (
        "Following the previous shot where Max chases a red ball. max_corgi catches the ball mid-air "
        "Featuring lia_woman (a woman in a yellow raincoat)."
    )
    # no action given: the previous shot's prompt stands in
    assert harb2.prompt.startswith("Following the previous shot where Lia walks past the boats. lia_woman")
    assert harb2.num_frames == 9


def test_changing_a_shot_changes_every_later_shot_of_its_scene_only(tmp_path: Path) -> None:
    text = (BUNDLED_MANIFESTS / "examples/storyboard.yaml").read_text()
    before = _load(BUNDLED_MANIFESTS / "examples/storyboard.yaml")
    edited = tmp_path / "sb.yaml"
    edited.write_text(text.replace("runs across a green park", "runs across a brown park"))
    after = _load(edited)
    assert [a.job_id != b.job_id for a, b in zip(before, after, strict=True)] == [
        True,
        True,
        False,
        False,
    ]


def test_inject_elements_reports_unknown_names() -> None:
    elements = {"Max": Element("Max", "max_corgi")}
    text, unknown = inject_elements("@Max and @Rex play", ["Max", "Ghost"], elements)
    assert text == "max_corgi and @Rex play"
    assert unknown == ["Rex", "Ghost"]


def test_bad_storyboard_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "scenes:\n  - name: a\n    shots:\n      - {prompt: '@Nobody waves', sweep: {grid: {seed: [1, 2]}}}\n"
        "  - {name: b}\njobs: []\n"
    )
    with pytest.raises(ManifestError) as err:
        _load(path)
    text = str(err.value)
    assert "'jobs'" in text or "jobs" in text
    assert "unknown element 'Nobody'" in text
    assert "sweeps are not allowed" in text
    assert "scenes[1]" in text


def test_shots_wait_for_their_predecessor_and_fail_with_it() -> None:
    jobs = _load(BUNDLED_MANIFESTS / "examples/storyboard.yaml")
    queue = WorkQueue(jobs)
    first = [queue.take(), queue.take()]
    assert {j.name for j in first if j} == {"park__shot01", "harbour__shot01"}
    assert queue.take() is None and queue.parked == 2  # second shots wait
    assert queue.finished(first[0].job_id, ok=True) == []
    released = queue.take()
    assert released is not None and released.after == first[0].job_id
    dropped = queue.finished(first[1].job_id, ok=False)
    assert [j.after for j in dropped] == [first[1].job_id]
    assert len(queue) == 0


def test_a_scene_never_spans_shards() -> None:
    jobs = _load(BUNDLED_MANIFESTS / "examples/storyboard.yaml")
    for n in (2, 3, 5):
        parts = [list(Shard(i, n).dealer().share(jobs)) for i in range(n)]
        for part in parts:
            scenes = {j.scene for j in part}
            assert all(sum(j.scene == s for j in part) == 2 for s in scenes)
        assert sorted(j.job_id for part in parts for j in part) == sorted(j.job_id for j in jobs)
        assert [len(part) for part in parts][:2] == [2, 2]  # two scenes of two shots: one per launch


def test_jobs_keep_scene_out_of_identity() -> None:
    jobs = _load(BUNDLED_MANIFESTS / "examples/storyboard.yaml")
    from ltx2_batch.core.jobs import compute_job_id

    job = jobs[0]
    assert compute_job_id(dataclasses.replace(job, scene="other"), "m") == job.job_id
