"""Exhaustive checks of the pure chunk arithmetic (docs/behaviour.md), no model involved."""

from __future__ import annotations

import itertools
import math

import pytest

from ltx2_batch.chaining.plan import (
    audio_handoff,
    audio_sample_range,
    latent_alignment,
    plan_chunks,
    round_up_frames,
)
from ltx2_batch.errors import ConfigError


def seed_chunk_count(total_frames: int, chunk_frames: int, overlap_frames: int) -> int:
    """The textbook chunk-count formula: `1 + ceil((total - chunk) / (chunk - overlap))`.

    With an overlap that is not on the latent grid (24 -> 25 trimmed) it
    can come up one chunk short (218 frames: 2 chunks give at most 121 + 96 = 217), so the plan counts with
    the aligned overlap instead; the two agree whenever the overlap is aligned (8m + 1).
    """
    if total_frames <= chunk_frames:
        return 1
    return 1 + math.ceil((total_frames - chunk_frames) / (chunk_frames - overlap_frames))


def test_seed_example_300_frames_is_three_chunks() -> None:
    plan = plan_chunks(300, 121, 24, 8)
    assert plan.chunk_count == 3 == seed_chunk_count(300, 121, 24)
    assert [c.num_frames for c in plan.chunks] == [121, 121, 113]
    assert [c.output_start for c in plan.chunks] == [0, 121, 217]


def test_quantum_alignment_matches_seed_formula() -> None:
    a = latent_alignment(24, 8)
    assert a.latent_slice_count == math.ceil(23 / 8) + 1 == 4
    assert a.effective_overlap == 25
    assert latent_alignment(25, 8).effective_overlap == 25
    assert latent_alignment(1, 8) == latent_alignment(1, 8)
    assert latent_alignment(1, 8).effective_overlap == 1
    assert latent_alignment(9, 8).latent_slice_count == 2


def test_unaligned_overlap_needs_one_more_chunk_than_the_seed_formula_at_218() -> None:
    # Two 121-frame chunks trimmed by 25 give 217 frames: the textbook count (2) cannot reach 218.
    assert seed_chunk_count(218, 121, 24) == 2
    plan = plan_chunks(218, 121, 24, 8)
    assert plan.chunk_count == 3
    assert plan.chunks[-1].kept_frames == 1


@pytest.mark.parametrize("overlap", [1, 8, 9, 16, 24, 25, 40, 57])
@pytest.mark.parametrize("chunk", [121, 97, 65])
def test_every_length_stitches_to_exactly_the_requested_frames(chunk: int, overlap: int) -> None:
    if latent_alignment(overlap, 8).effective_overlap >= chunk:
        pytest.skip("overlap too large for this chunk")
    alignment = latent_alignment(overlap, 8)
    trim, handoff = alignment.effective_overlap, alignment.latent_slice_count
    for total in range(1, 2001):
        plan = plan_chunks(total, chunk, overlap, 8)
        covered = 0
        for i, c in enumerate(plan.chunks):
            assert c.index == i
            assert (c.num_frames - 1) % 8 == 0 or total <= chunk, (total, c)
            assert 1 <= c.num_frames <= chunk
            assert c.output_start == covered
            assert c.kept_frames > 0
            assert c.keep_end <= c.num_frames
            if i == 0:
                assert c.keep_start == 0 and c.handoff_latent_frames == 0
            else:
                assert c.keep_start == trim
                assert c.handoff_latent_frames == handoff
                # only the last chunk may be short, and then only by the rounding
                assert c.num_frames == chunk or i == plan.chunk_count - 1
                assert c.num_frames - c.keep_end < 8
            covered += c.kept_frames
        assert covered == total
        # never more chunks than needed, never fewer than the textbook formula
        assert plan.chunk_count >= seed_chunk_count(total, chunk, overlap)
        if total > chunk:
            assert plan.chunk_count == 1 + math.ceil((total - chunk) / (chunk - trim))


def test_aligned_overlap_agrees_with_seed_formula_everywhere() -> None:
    for total in range(1, 2001):
        assert plan_chunks(total, 121, 25, 8).chunk_count == seed_chunk_count(total, 121, 25)


def test_audio_ranges_tile_the_output_exactly() -> None:
    for total in (122, 218, 300, 500, 1001):
        plan = plan_chunks(total, 121, 24, 8)
        for fps, sr in ((24.0, 24000), (25.0, 24000), (30.0, 44100), (23.976, 48000)):
            end = 0
            for c in plan.chunks:
                local, count, out_start = audio_sample_range(c, fps, sr)
                assert out_start == end
                assert local >= 0 and count > 0
                end += count
            assert end == round(total / fps * sr)


def test_round_up_frames() -> None:
    assert [round_up_frames(n, 8) for n in (1, 2, 9, 10, 17, 121)] == [1, 9, 9, 17, 17, 121]


@pytest.mark.parametrize(("chunk", "overlap"), [(120, 24), (121, 0), (121, 121), (17, 17)])
def test_bad_chaining_config_is_a_clear_error(chunk: int, overlap: int) -> None:
    with pytest.raises(ConfigError, match="chaining"):
        plan_chunks(300, chunk, overlap, 8)


@pytest.mark.parametrize(
    ("fps", "expected"),
    [(24.0, (100, 26)), (25.0, (96, 25)), (30.0, (80, 20))],  # 96 frames before the overlap, 25 in it
)
def test_audio_handoff_takes_the_audio_latents_under_the_overlap(
    fps: float, expected: tuple[int, int]
) -> None:
    plan = plan_chunks(300, 121, 24, 8)
    for previous, chunk in itertools.pairwise(plan.chunks):
        span = audio_handoff(previous, chunk, fps, 25.0)
        assert span is not None and (span.start, span.count) == expected
        total = round(previous.num_frames / fps * 25.0)  # ltx-core's audio latent length of the window
        assert span.start + span.count <= total
        # the handed-off latents end where the overlap ends, within one audio latent frame
        assert abs((span.start + span.count) / 25.0 - previous.num_frames / fps) < 1 / 25.0 + 1e-9
    assert audio_handoff(plan.chunks[0], plan.chunks[0], fps, 25.0) is None  # the first chunk has none
