"""Pipeline auto-selection, render modes, chunk counts and the value rules in manifest/select.py."""

from __future__ import annotations

import math

import pytest

from ltx2_batch.core.jobs import LoraKind, PipelineKind, RenderMode, UpscaleSpec
from ltx2_batch.errors import ConfigError
from ltx2_batch.manifest.select import (
    chunk_count,
    frame_problems,
    nearest_frame_counts,
    nearest_multiples,
    pipeline_problems,
    select_mode,
    select_pipeline,
    size_problems,
)

AUTO, TI2VID, KEYFRAME, IC_LORA, DISTILLED = (
    PipelineKind.AUTO,
    PipelineKind.TI2VID,
    PipelineKind.KEYFRAME,
    PipelineKind.IC_LORA,
    PipelineKind.DISTILLED,
)


@pytest.mark.parametrize(
    ("frames", "loras", "expected"),
    [
        ((), (), TI2VID),
        ((0,), (), TI2VID),  # one image: image-to-video
        ((0, 0), (), TI2VID),  # two images at the SAME frame are not keyframes
        ((0, 120), (), KEYFRAME),
        ((0, 40, 80), (), KEYFRAME),
        ((), (LoraKind.LORA,), TI2VID),
        ((), (LoraKind.LORA, LoraKind.IC_LORA), IC_LORA),
        ((0,), (LoraKind.IC_LORA,), IC_LORA),
        ((0, 8), (LoraKind.IC_LORA,), KEYFRAME),  # seed order: keyframe is checked first
    ],
)
def test_auto_selection_follows_the_seed_order(frames: tuple, loras: tuple, expected: PipelineKind) -> None:
    assert select_pipeline(AUTO, frames, loras) is expected


@pytest.mark.parametrize("explicit", [TI2VID, DISTILLED, IC_LORA, KEYFRAME])
def test_explicit_pipeline_is_kept(explicit: PipelineKind) -> None:
    assert select_pipeline(explicit, (0, 50), (LoraKind.IC_LORA,)) is explicit


@pytest.mark.parametrize(
    ("pipeline", "frames", "mode"),
    [
        (TI2VID, 121, RenderMode.VIDEO),
        (TI2VID, 129, RenderMode.CHAINED),
        (DISTILLED, 145, RenderMode.CHAINED),
        (TI2VID, 1, RenderMode.IMAGE),
        (KEYFRAME, 1, RenderMode.IMAGE),
        (KEYFRAME, 145, RenderMode.VIDEO),  # never chained (the validator rejects it)
        (IC_LORA, 145, RenderMode.VIDEO),
        (TI2VID, 9, RenderMode.VIDEO),
    ],
)
def test_mode(pipeline: PipelineKind, frames: int, mode: RenderMode) -> None:
    assert select_mode(pipeline, frames, 121) is mode


def test_chunk_count_matches_seed_examples_and_the_planner() -> None:
    assert chunk_count(300, 121, 24) == 3  # the worked example in docs/behaviour.md
    assert chunk_count(145, 121, 24) == 2
    assert chunk_count(121, 121, 24) == 1
    assert chunk_count(9, 121, 24) == 1
    # overlap 24 is trimmed as 25 (latent grid): 2 chunks give 121 + 96 = 217 frames, so 218 needs 3
    # where the textbook formula says 2; validation counts like the executor does
    assert chunk_count(217, 121, 24) == 2
    assert chunk_count(218, 121, 24) == 3
    for n in range(122, 2001):
        # an overlap on the latent grid (8m + 1): the textbook formula holds exactly
        assert chunk_count(n, 121, 25) == 1 + math.ceil((n - 121) / 96)
        # and with the default overlap, the chunks really cover n frames and one fewer would not
        chunks = chunk_count(n, 121, 24)
        assert 121 + (chunks - 1) * 96 >= n > 121 + (chunks - 2) * 96


@pytest.mark.parametrize(("chunk", "overlap"), [(121, 121), (121, 0), (120, 24), (17, 16)])
def test_chunk_count_rejects_impossible_chaining(chunk: int, overlap: int) -> None:
    with pytest.raises(ConfigError, match="chaining"):
        chunk_count(200, chunk, overlap)


def test_nearest_values() -> None:
    assert nearest_multiples(700, 64) == (640, 704)
    assert nearest_multiples(30, 64) == (64,)
    assert nearest_multiples(100, 32) == (96, 128)
    assert nearest_frame_counts(120) == (113, 121)
    assert nearest_frame_counts(122) == (121, 129)
    assert nearest_frame_counts(0) == (1, 9)
    assert nearest_frame_counts(5) == (1, 9)


def test_size_rules_depend_on_stage_count() -> None:
    assert size_problems(768, 512, spatial=True) == []
    assert size_problems(96, 96, spatial=False) == []
    two = dict(size_problems(96, 512, spatial=True))
    assert "multiple of 64" in two["width"]
    assert "64 or 128" in two["width"]
    assert "height" not in two
    assert "positive" in dict(size_problems(0, -64, spatial=True))["height"]


def test_frame_rules() -> None:
    assert frame_problems(121, 24.0) == []
    assert frame_problems(300, 24.0, chained=True) == []  # the planner trims to any length
    assert frame_problems(1, 0.5) == []
    assert "113 or 121" in dict(frame_problems(120, 24))["num_frames"]
    assert ">= 1" in dict(frame_problems(0, 24))["num_frames"]
    assert "> 0" in dict(frame_problems(9, 0))["frame_rate"]


def _pipeline(
    requested: PipelineKind,
    frames: int = 121,
    images: tuple = (),
    loras: tuple = (),
    video: bool = False,
) -> dict[str, str]:
    chosen = select_pipeline(requested, images, loras)
    return dict(pipeline_problems(requested, chosen, frames, images, loras, video, 121))


def test_pipeline_requirements() -> None:
    assert _pipeline(AUTO) == {}
    assert "2 images" in _pipeline(KEYFRAME, images=(0, 0))["images"]
    assert "type: ic_lora" in _pipeline(IC_LORA, loras=(LoraKind.LORA,))["loras"]
    assert "needs pipeline ic_lora" in _pipeline(TI2VID, loras=(LoraKind.IC_LORA,))["loras"]
    assert "only used by pipeline ic_lora" in _pipeline(TI2VID, video=True)["video_conditioning"]
    assert "at most 121" in _pipeline(KEYFRAME, 145, images=(0, 100))["num_frames"]
    assert "at most 121" in _pipeline(IC_LORA, 129, loras=(LoraKind.IC_LORA,))["num_frames"]
    assert _pipeline(DISTILLED, 1001) == {}
    assert _pipeline(IC_LORA, 121, loras=(LoraKind.IC_LORA,), video=True) == {}


def test_the_used_by_table_is_what_the_rules_refuse() -> None:
    """docs/manifest.md's "used by" column comes from select.USED_BY: the fields set by mistake on another
    kind are refused by the rules exactly outside their kinds, and only chainable kinds chain."""
    from ltx2_batch.manifest.select import (
        KINDS,
        USED_BY,
        a2vid_problems,
        pipeline_problems,
        retake_problems,
        select_mode,
    )

    for kind in KINDS:
        refused = {
            "video_conditioning": pipeline_problems(kind, kind, 9, (), (), True, 121),
            "audio_conditioning": a2vid_problems(kind, True, UpscaleSpec(), True),
            "retake": retake_problems(kind, True, UpscaleSpec(spatial=False)),
        }
        for field, problems in refused.items():
            only = any(f == field and "is only used by" in m for f, m in problems)
            assert only == (kind not in USED_BY[field]), (kind, field)
        chained = select_mode(kind, 300, 121) is RenderMode.CHAINED
        assert chained == (kind in USED_BY["chunk_prompts"]) == (kind in USED_BY["chunk_images"]), kind
