"""output.overlap=auto on CUDA: each job takes the shorter steady-state cycle (pure arithmetic)."""

from __future__ import annotations

import pytest

from ltx2_batch.worker.overlap import overlapped_decode_is_shorter


@pytest.mark.parametrize(
    ("denoise", "decode", "encode", "shorter"),
    [
        (9.9, 1.6, 7.5, True),  # H200 two-stage 1536x1024x121: the decode hides behind the denoise
        (3.4, 0.4, 2.7, True),  # H200 distilled 768x512x121
        (3.0, 0.4, 12.0, False),  # a slow CPU encode: decode + encode on one thread only lengthens it
        (1.0, 1.0, 1.5, False),  # max(1, 2.5) = 2.5 against max(2, 1.5) = 2
        (2.0, 1.0, 1.0, True),  # max(2, 2) = 2 against max(3, 1) = 3
    ],
)
def test_overlapped_decode_is_chosen_only_when_it_shortens_the_cycle(
    denoise: float, decode: float, encode: float, shorter: bool
) -> None:
    assert overlapped_decode_is_shorter(denoise, decode, encode) is shorter
