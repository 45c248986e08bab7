"""Hydra multirun's pure parts (run/multirun.py): a sweep point's folder label keeps what changes the render,
and the sweep ledger's columns keep the overrides' types. The sweep itself runs in
tests/integration/test_sweep.py."""

from __future__ import annotations

import pyarrow as pa

from ltx2_batch.run.multirun import parse_overrides, point_label, typed_column


def test_point_labels_keep_what_changes_the_render() -> None:
    overrides = parse_overrides(
        [
            "seed=2",
            "manifest=/a/b.yaml",
            "output.root=/tmp/o",
            "+model=tiny",
            "engine.num_workers=2",
            "chaining.overlap_frames=16",
        ]
    )
    assert overrides[3] == ("model", "tiny")
    assert point_label(overrides) == "chaining.overlap_frames=16,model=tiny,seed=2"
    assert point_label(parse_overrides(["manifest=x", "output.root=/o"]), number=3) == "point3"
    assert point_label(parse_overrides(["prompt_note=a/b c"])) == "prompt_note=a_b_c"
    long = point_label(parse_overrides([f"k{i}=value{i}" for i in range(40)]))
    assert len(long) <= 120 and long != point_label(parse_overrides([f"k{i}=value{i}" for i in range(41)]))


def test_sweep_columns_keep_the_override_types() -> None:
    assert typed_column(["1", "2", None]).type == pa.int64()
    assert typed_column(["1", "2.5"]).to_pylist() == [1.0, 2.5]
    assert typed_column(["true", "False"]).to_pylist() == [True, False]
    assert typed_column(["tiny", "3"]).to_pylist() == ["tiny", "3"]  # a mix stays text
