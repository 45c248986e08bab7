"""The memory policy's choices for given free-memory figures (pure: no device, no torch)."""

from __future__ import annotations

import pytest

from ltx2_batch.backends.memory import (
    GIB,
    HEADROOM,
    TILED_DECODE_BYTES,
    MemoryPolicy,
    ModelFootprint,
    choose_memory_policy,
    decode_peak_bytes,
)

# LTX-2 19B in bf16 (18.88B params), Gemma-3-12B bf16, VAE/vocoder/upsampler/connectors; fp8 transformer
FULL = ModelFootprint(
    transformer=int(37.8 * GIB),
    text_encoder=int(24.4 * GIB),
    other=int(2.5 * GIB),
    activations=8 * GIB,
    decode=decode_peak_bytes(1536, 1024, 121),
    transformer_fp8=int(21.0 * GIB),
)


@pytest.mark.parametrize(
    ("free_gib", "expected"),
    [
        (139.0, MemoryPolicy.resident),  # H200
        (79.0, MemoryPolicy.offload_text_encoder),  # H100 80 GB
        (56.0, MemoryPolicy.tiled_decode),
        (36.0, MemoryPolicy.fp8_transformer),  # e.g. a 40 GB A100
        (20.0, MemoryPolicy.offload_all),  # nothing fits
    ],
)
def test_ladder_for_free_memory(free_gib: float, expected: MemoryPolicy) -> None:
    plan = choose_memory_policy(int(free_gib * GIB), FULL)
    assert plan.policy is expected
    assert plan.fits is (expected is not MemoryPolicy.offload_all)
    if plan.fits:
        assert plan.planned_peak_bytes <= free_gib * GIB * HEADROOM


def test_each_rung_is_the_cheapest_that_fits() -> None:
    """Just below a rung's peak the next rung is chosen; at its peak (with headroom) that rung is chosen."""
    resident_peak = FULL.transformer + FULL.text_encoder + FULL.other + max(FULL.activations, FULL.decode)
    at = choose_memory_policy(int(resident_peak / HEADROOM) + 16, FULL)
    below = choose_memory_policy(int(resident_peak / HEADROOM) - 2**20, FULL)
    assert at.policy is MemoryPolicy.resident
    assert below.policy is MemoryPolicy.offload_text_encoder


def test_no_fp8_path_skips_the_fp8_rung() -> None:
    no_fp8 = ModelFootprint(**{**FULL.__dict__, "transformer_fp8": None})
    assert choose_memory_policy(36 * GIB, no_fp8).policy is MemoryPolicy.offload_all


def test_offloaded_text_encoder_must_still_fit_alone() -> None:
    """A text encoder bigger than the budget cannot be fetched back to encode: offloading is no answer."""
    huge_te = ModelFootprint(
        transformer=10 * GIB, text_encoder=70 * GIB, other=GIB, activations=GIB, decode=GIB
    )
    plan = choose_memory_policy(60 * GIB, huge_te)
    assert plan.policy is MemoryPolicy.offload_all
    assert not plan.fits


def test_host_memory_is_always_resident() -> None:
    plan = choose_memory_policy(None, FULL)
    assert plan.policy is MemoryPolicy.resident
    assert plan.as_info()["memory_free_gib"] is None


def test_plan_flags_and_info() -> None:
    plan = choose_memory_policy(36 * GIB, FULL)
    assert (plan.offload_text_encoder, plan.tile_decode, plan.fp8_transformer) == (True, True, True)
    info = plan.as_info()
    assert info["memory_policy"] == "fp8_transformer"
    assert info["memory_free_gib"] == 36.0
    tiled = choose_memory_policy(56 * GIB, FULL)
    assert (tiled.offload_text_encoder, tiled.tile_decode, tiled.fp8_transformer) == (True, True, False)
    assert tiled.planned_peak_bytes >= FULL.transformer + FULL.other + TILED_DECODE_BYTES


def test_decode_overlap_needs_resident_weights_and_both_peaks_side_by_side() -> None:
    """output.overlap_decode: job n decodes while job n+1 denoises, so both peaks are on the device at once;
    and nothing may move between devices while two threads use the models (resident only)."""
    side_by_side = FULL.transformer + FULL.text_encoder + FULL.other + FULL.activations + FULL.decode
    resident_peak = FULL.transformer + FULL.text_encoder + FULL.other + max(FULL.activations, FULL.decode)
    roomy = choose_memory_policy(int(side_by_side / HEADROOM) + 16, FULL)
    tight = choose_memory_policy(int(side_by_side / HEADROOM) - 2**20, FULL)
    assert side_by_side > resident_peak
    assert (roomy.policy, roomy.decode_overlap) == (MemoryPolicy.resident, True)
    assert (tight.policy, tight.decode_overlap) == (MemoryPolicy.resident, False)
    assert roomy.as_info()["memory_decode_overlap"] is True
    assert choose_memory_policy(139 * GIB, FULL).decode_overlap  # H200
    assert not choose_memory_policy(79 * GIB, FULL).decode_overlap  # H100 80 GB: text encoder parked
    assert choose_memory_policy(None, FULL).decode_overlap  # host memory
