"""Sweep expansion: counts, names, dotted keys, defaults merging and sweep shape problems."""

from __future__ import annotations

from typing import Any

from ltx2_batch.manifest.expand import expand_manifest
from ltx2_batch.manifest.sweep import read_sweep


def _doc(jobs: list[dict], **top: Any) -> dict[str, Any]:
    return {"jobs": jobs, **top}


def _names(doc: dict[str, Any]) -> list[str]:
    expansion = expand_manifest(doc)
    assert expansion.problems == ()
    return [job.name for job in expansion.jobs]


def test_no_sweep_is_one_job_per_entry_with_default_names() -> None:
    assert _names(_doc([{"name": "a", "prompt": "x"}, {"prompt": "y"}])) == ["a", "job1"]


def test_grid_is_a_cartesian_product() -> None:
    doc = _doc([{"name": "a", "prompt": "x", "sweep": {"grid": {"seed": [1, 2, 3], "num_frames": [9, 17]}}}])
    expansion = expand_manifest(doc)
    assert len(expansion.jobs) == 6
    pairs = {(j.fields["seed"], j.fields["num_frames"]) for j in expansion.jobs}
    assert pairs == {(s, n) for s in (1, 2, 3) for n in (9, 17)}
    assert expansion.jobs[0].name == "a__seed=1__num_frames=9"


def test_zip_advances_together() -> None:
    doc = _doc(
        [{"name": "a", "prompt": "x", "sweep": {"zip": {"seed": [1, 2, 3], "prompt": ["p", "q", "r"]}}}]
    )
    jobs = expand_manifest(doc).jobs
    assert [(j.fields["seed"], j.fields["prompt"]) for j in jobs] == [(1, "p"), (2, "q"), (3, "r")]
    assert [j.name for j in jobs] == ["a__seed=1__prompt=p", "a__seed=2__prompt=q", "a__seed=3__prompt=r"]


def test_grid_times_zip() -> None:
    sweep = {
        "grid": {"seed": [1, 2], "audio": [True, False]},
        "zip": {"prompt": ["p", "q", "r"], "num_frames": [9, 17, 25]},
    }
    assert len(expand_manifest(_doc([{"name": "a", "prompt": "x", "sweep": sweep}])).jobs) == 2 * 2 * 3


def test_manifest_level_sweep_applies_to_every_job_and_job_level_multiplies() -> None:
    doc = _doc(
        [
            {"name": "a", "prompt": "x", "sweep": {"grid": {"num_frames": [9, 17, 25]}}},
            {"name": "b", "prompt": "y"},
        ],
        sweep={"grid": {"seed": [1, 2]}},
    )
    names = _names(doc)
    assert len(names) == 2 * 3 + 2
    assert "a__seed=2__num_frames=25" in names
    assert names[-2:] == ["b__seed=1", "b__seed=2"]
    assert len(set(names)) == len(names)


def test_dotted_keys_set_one_nested_field_and_keep_the_rest() -> None:
    doc = _doc(
        [
            {
                "name": "a",
                "prompt": "x",
                "sweep": {
                    "grid": {"video_guider_params.cfg_scale": [2.5, 4], "upscale.temporal": [True, False]}
                },
            }
        ],
        defaults={"video_guider_params": {"cfg_scale": 3.0, "stg_scale": 1.0}, "upscale": {"spatial": False}},
    )
    jobs = expand_manifest(doc).jobs
    assert len(jobs) == 4
    assert jobs[0].fields["video_guider_params"] == {"cfg_scale": 2.5, "stg_scale": 1.0}
    assert jobs[0].fields["upscale"] == {"spatial": False, "temporal": True}
    assert jobs[0].name == "a__cfg_scale=2.5__temporal=true"
    # the defaults dict itself is not mutated by expansion
    assert doc["defaults"]["video_guider_params"] == {"cfg_scale": 3.0, "stg_scale": 1.0}


def test_dotted_keys_with_the_same_leaf_keep_the_full_key_in_names() -> None:
    sweep = {"grid": {"video_guider_params.cfg_scale": [2], "audio_guider_params.cfg_scale": [5]}}
    assert _names(_doc([{"name": "a", "prompt": "x", "sweep": sweep}])) == [
        "a__video_guider_params.cfg_scale=2__audio_guider_params.cfg_scale=5"
    ]


def test_long_values_are_labelled_by_position_and_names_by_value() -> None:
    sweep = {"zip": {"prompt": ["A long prompt with spaces", "Another one"]}}
    assert _names(_doc([{"name": "a", "prompt": "x", "sweep": sweep}])) == ["a__prompt#0", "a__prompt#1"]
    named = {"zip": {"name": ["storm", "calm"], "prompt": ["A storm", "A calm sea"]}, "grid": {"seed": [1]}}
    assert _names(_doc([{"name": "a", "prompt": "x", "sweep": named}])) == [
        "a__seed=1__storm",
        "a__seed=1__calm",
    ]


def test_defaults_merge_one_level_for_mappings_and_jobs_win() -> None:
    doc = _doc(
        [{"name": "a", "prompt": "x", "width": 128, "tags": {"b": 2}, "upscale": {"temporal": True}}],
        defaults={"width": 64, "height": 64, "tags": {"a": 1}, "upscale": {"spatial": False}},
    )
    fields = expand_manifest(doc).jobs[0].fields
    assert fields["width"] == 128
    assert fields["height"] == 64
    assert fields["tags"] == {"a": 1, "b": 2}
    assert fields["upscale"] == {"spatial": False, "temporal": True}
    assert "sweep" not in fields


def test_sweep_values_override_job_fields() -> None:
    doc = _doc([{"name": "a", "prompt": "x", "seed": 5}], sweep={"grid": {"seed": [1, 2]}})
    assert [j.fields["seed"] for j in expand_manifest(doc).jobs] == [1, 2]


def _problem_fields(doc: dict[str, Any]) -> dict[str, str]:
    return {field: message for _, _, field, message in expand_manifest(doc).problems}


def test_sweep_shape_problems() -> None:
    bad = _doc(
        [
            {
                "name": "a",
                "prompt": "x",
                "sweep": {
                    "grid": {"sed": [1], "width": [], "upscale.temporl": [True], "num_frames.x": [1]},
                    "zip": {"prompt": ["p", "q"], "seed": [1, 2, 3]},
                    "zipp": {},
                },
            }
        ]
    )
    problems = _problem_fields(bad)
    assert "did you mean 'seed'" in problems["sweep.grid.sed"]
    assert "non-empty list" in problems["sweep.grid.width"]
    assert "did you mean 'temporal'" in problems["sweep.grid.upscale.temporl"]
    assert "not a mapping" in problems["sweep.grid.num_frames.x"]
    assert "equal length" in problems["sweep.zip"]
    assert "prompt: 2, seed: 3" in problems["sweep.zip"]
    assert "did you mean 'zip'" in problems["sweep.zipp"]


def test_same_key_swept_twice_is_a_problem() -> None:
    both = _doc([{"name": "a", "prompt": "x", "sweep": {"grid": {"seed": [1]}, "zip": {"seed": [2]}}}])
    assert "both grid and zip" in _problem_fields(both)["sweep.zip.seed"]
    levels = _doc(
        [{"name": "a", "prompt": "x", "sweep": {"grid": {"seed": [1]}}}], sweep={"zip": {"seed": [2]}}
    )
    assert "manifest level" in _problem_fields(levels)["sweep.seed"]


def test_unknown_and_misplaced_keys() -> None:
    problems = _problem_fields(
        _doc([{"name": "a", "promt": "x", "loras": []}], defaults={"name": "n", "widht": 64})
    )
    assert "did you mean 'prompt'" in problems["promt"]
    assert "did you mean 'width'" in problems["defaults.widht"]
    assert "cannot be a default" in problems["defaults.name"]


def test_bad_names() -> None:
    for name in ("a/b", "..", "", 7, "tab\tname"):
        assert "name" in _problem_fields(_doc([{"name": name, "prompt": "x"}])), name


def test_no_sweep_is_one_empty_point() -> None:
    sweep, problems = read_sweep(None)
    assert problems == []
    assert sweep.size == 1
    assert [sweep.assignments(p) for p in sweep.points()] == [()]


def test_ten_thousand_jobs_expand_with_unique_names() -> None:
    doc = _doc(
        [{"name": "a", "prompt": "x"}],
        sweep={
            "grid": {"seed": list(range(100)), "video_guider_params.cfg_scale": list(range(10))},
            "zip": {"num_frames": list(range(10))},
        },
    )
    expansion = expand_manifest(doc)
    assert len(expansion.jobs) == 10_000
    assert len({j.name for j in expansion.jobs}) == 10_000


def test_a_runaway_sweep_is_refused_before_it_expands() -> None:
    huge = {"grid": {"seed": list(range(2000)), "num_frames": list(range(2000))}}
    problems = _problem_fields(_doc([{"name": "a", "prompt": "x", "sweep": huge}]))
    assert "4,000,000 points" in problems["sweep.grid"]
    many = _doc(
        [{"name": f"j{i}", "prompt": "x", "sweep": {"grid": {"seed": list(range(1500))}}} for i in range(2)],
        sweep={"grid": {"num_frames": list(range(1500))}},  # 1500 x 1500 per job: each under the grid cap
    )
    expansion = expand_manifest(many)
    assert "is 2,250,000 jobs" in {f: m for _, _, f, m in expansion.problems}["sweep"]
    assert expansion.fatal and expansion.entries == ()


def test_grid_times_zip_is_counted_before_it_is_built() -> None:
    """The cap counts grid x zip, an entry's sweep x the manifest's, and the manifest in all: by arithmetic
    on the axes' lengths, before one point exists."""
    sweep = {
        "grid": {"seed": list(range(1000)), "num_frames": list(range(1000))},
        "zip": {"prompt": ["a", "b", "c"]},
    }
    expansion = expand_manifest(_doc([{"name": "a", "prompt": "x", "sweep": sweep}]))
    message = {f: m for _, _, f, m in expansion.problems}["sweep"]
    assert "grid (1,000,000 points) times zip (3 rows) is 3,000,000 jobs" in message
    entries = [
        {"name": f"j{i}", "prompt": "x", "sweep": {"grid": {"seed": list(range(500))}}} for i in range(5)
    ]
    total = expand_manifest(_doc(entries), max_jobs=2000)
    ((index, _name, field, message),) = total.problems
    assert (index, field) == (None, "jobs") and "2,500 jobs" in message and total.fatal


def test_an_entry_without_a_sweep_is_not_blamed_for_its_sweep() -> None:
    (problem,) = expand_manifest(_doc([{"name": "a", "prompt": "x"}]), max_jobs=0).problems
    assert problem[2] == "jobs"  # the manifest's count, not a `sweep` field the job does not have


def test_points_are_walked_lazily_in_order_and_shapes_skip_varying_axes() -> None:
    sweep, _ = read_sweep({"grid": {"seed": [1, 2, 3], "width": [64, 128]}, "zip": {"prompt": ["p", "q"]}})
    points = list(sweep.points())
    assert len(points) == sweep.size == 12
    assert [sweep.assignments(p) for p in points[:2]] == [
        (("seed", 1), ("width", 64), ("prompt", "p")),
        (("seed", 1), ("width", 64), ("prompt", "q")),
    ]
    shapes = list(sweep.shape_points({"sweep.grid.width": {1}}))
    assert shapes == [((0, 0, 0), 6)]  # one template (width 64), shared by 3 seeds x 2 prompts
