"""Validation is bounded whatever the input (issue 23, item 4): costs are computed before anything is built.

What is built and counted is asserted here, never seconds: how many templates were validated, that no
sweep product was walked, and tracemalloc's peak while a hostile manifest is refused. The seconds and
peak memory of the same worst cases, before and after, are `bench/validation_bounds.py`'s.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ltx2_batch.errors import MAX_LISTED_PROBLEMS, ManifestError
from ltx2_batch.manifest import validate
from ltx2_batch.manifest.expand import Expansion
from tests.manifests import manifest_jobs

MIB = 1 << 20
BASE = {"name": "a", "prompt": "a cat", "width": 64, "height": 64, "num_frames": 9, "pipeline": "ti2vid"}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def templates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts `parse_template` calls (one per template validated)."""
    calls = [0]
    real = validate.parse_template

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(validate, "parse_template", counted)
    return calls


def _no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Walking every expanded job (or name) of the manifest fails the test."""

    def refuse(_self: Expansion) -> Iterator[Any]:
        raise AssertionError("the sweep product was walked")

    monkeypatch.setattr(Expansion, "iter_jobs", refuse)
    monkeypatch.setattr(Expansion, "iter_names", refuse)


def _refused(folder: Path, doc: dict[str, Any]) -> tuple[ManifestError, int]:
    """The ManifestError of `doc`, and tracemalloc's peak (bytes) while it was found."""
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError) as caught:
            manifest_jobs(path)
        return caught.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_one_bad_value_among_2m_sweep_points_is_refused_per_axis(
    folder: Path, templates: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_walk(monkeypatch)
    scales: list[object] = [i / 10 for i in range(999)] + ["x"]
    sweep = {"grid": {"seed": list(range(2000)), "video_guider_params.cfg_scale": scales}}
    error, peak = _refused(folder, {"jobs": [{**BASE, "sweep": sweep}]})
    (problem,) = error.problems
    assert problem.field == "sweep.grid.video_guider_params.cfg_scale[999]"
    assert (problem.job_index, problem.job_name) == (0, "a")
    assert "must be a finite number, got string 'x'" in problem.message
    assert templates[0] <= 999  # the good scales' templates: the 2,000 seeds do not multiply them
    assert peak < 32 * MIB


def test_grid_times_zip_over_the_cap_is_refused_before_it_exists(
    folder: Path, templates: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_walk(monkeypatch)
    grid = {"seed": list(range(1000)), "video_guider_params.cfg_scale": [i / 10 for i in range(1000)]}
    sweep = {"grid": grid, "zip": {"prompt": ["a", "b", "c"]}}
    error, _peak = _refused(folder, {"jobs": [{**BASE, "sweep": sweep}]})
    (problem,) = error.problems
    assert problem.field == "sweep" and "is 3,000,000 jobs, over the limit of 2,000,000" in problem.message
    assert templates[0] == 0


def test_storyboard_trigger_words_are_counted_not_expanded(folder: Path) -> None:
    shots = [{"prompt": "@M " * 20_000}]
    doc = {"elements": [{"name": "M", "trigger": "x" * 60_000}], "scenes": [{"name": "s", "shots": shots}]}
    error, peak = _refused(folder, {**doc, "defaults": {"width": 64, "height": 64, "num_frames": 9}})
    (problem,) = error.problems
    assert problem.field == "scenes[0].shots[0].prompt"
    assert "is 1,200,020,000 characters once @mentions become trigger words" in problem.message
    assert peak < 16 * MIB  # the expanded prompt would be 1.2 GB


def test_the_report_lists_the_first_problems_and_counts_the_rest(folder: Path) -> None:
    widths = list(range(5000, 7000))  # every one over limits.max_width (4096)
    error, _peak = _refused(folder, {"jobs": [{**BASE, "sweep": {"grid": {"width": widths}}}]})
    assert len(error.problems) == MAX_LISTED_PROBLEMS
    assert error.hidden == len(widths) - MAX_LISTED_PROBLEMS
    text = str(error)
    assert text.startswith("2,000 problem(s)") and "... and 1,950 more not listed" in text
    assert error.problems[0].field == "sweep.grid.width[0]" and len(text) < 20_000


def test_combinations_are_walked_once_per_template_among_good_values(
    folder: Path, templates: list[int]
) -> None:
    """96 is a width on its own but not for a two-stage render: found on the one combination that has it."""
    sweep = {"grid": {"seed": list(range(500)), "width": [64, 96, 5000], "upscale.spatial": [True, False]}}
    error, _peak = _refused(folder, {"jobs": [{**BASE, "sweep": sweep}]})
    found = {(p.field, p.job_name) for p in error.problems}
    assert found == {
        ("sweep.grid.width[2]", "a"),  # alone: over the limit
        ("width", "a__seed=0__width=96__spatial=true"),  # in combination, once for its 500 seeds
    }
    assert "(and 499 more expanded job(s) of this entry)" in error.problems[1].message
    assert templates[0] == 4  # (64, 96) x (true, false): the bad value and the seeds multiply nothing


def test_unknown_keys_and_value_problems_are_reported_together(folder: Path) -> None:
    doc = {"jobs": [{**BASE, "widht": 64, "num_frames": 10}], "defaults": {"hieght": 64}}
    error, _peak = _refused(folder, doc)
    fields = {p.field for p in error.problems}
    assert fields == {"widht", "defaults.hieght", "num_frames"}


def test_a_prompt_template_repeating_the_row_is_counted_before_it_is_built(folder: Path) -> None:
    (folder / "caps.txt").write_text("short\n" + "y" * 5000 + "\n")
    template = " ".join(["{prompt}"] * 5)
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"jobs": [{**BASE, "prompt": template, "prompts": {"path": "caps.txt"}}]}))
    with pytest.raises(ManifestError, match=r"row 1: in the job's prompt template \(5 x \{prompt\}\)"):
        manifest_jobs(path)


def test_counting_a_sweep_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from ltx2_batch.manifest.expand import expand_manifest

    _no_walk(monkeypatch)
    doc = {"jobs": [{**BASE, "sweep": {"grid": {"seed": list(range(1000)), "width": list(range(1000))}}}]}
    assert expand_manifest(doc).count == 1_000_000
