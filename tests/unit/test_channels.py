"""media/channels.py: the weights that mix a file's channels to the audio encoder's count, from its layout
(docs/behaviour.md, "Driving audio (a2vid)")."""

from __future__ import annotations

import math

import pytest

from ltx2_batch.media.channels import mix_weights

MINUS_3_DB = 1 / math.sqrt(2)


def _close(got: tuple[tuple[float, ...], ...], want: list[list[float]]) -> bool:
    return len(got) == len(want) and all(
        len(g) == len(w) and all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )


def test_mono_is_copied_and_stereo_kept() -> None:
    assert mix_weights(("FC",), 2) == ((1.0,), (1.0,))
    assert mix_weights(("NONE",), 2) == ((1.0,), (1.0,))  # a WAV without a channel mask
    assert mix_weights(("FL", "FR"), 2) == ((1.0, 0.0), (0.0, 1.0))
    assert mix_weights(("NONE", "NONE"), 2) == ((1.0, 0.0), (0.0, 1.0))


def test_five_one_folds_to_stereo_without_clipping() -> None:
    total = 1 + 2 * MINUS_3_DB
    want = [
        [1 / total, 0, MINUS_3_DB / total, 0, MINUS_3_DB / total, 0],
        [0, 1 / total, MINUS_3_DB / total, 0, 0, MINUS_3_DB / total],
    ]
    weights = mix_weights(("FL", "FR", "FC", "LFE", "BL", "BR"), 2)
    assert _close(weights, want)
    assert max(sum(row) for row in weights) == pytest.approx(1.0)  # full scale in, full scale out at most


def test_other_layouts() -> None:
    quad = mix_weights(("FL", "FR", "BL", "BR"), 2)
    total = 1 + MINUS_3_DB
    assert _close(quad, [[1 / total, 0, MINUS_3_DB / total, 0], [0, 1 / total, 0, MINUS_3_DB / total]])
    two_one = mix_weights(("FL", "FR", "LFE"), 2)  # the LFE is left out; nothing to scale
    assert two_one == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    seven_one = mix_weights(("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"), 2)
    assert seven_one[0][3] == seven_one[1][3] == 0 and seven_one[0][1] == seven_one[1][0] == 0
    assert max(sum(row) for row in seven_one) == pytest.approx(1.0)
    unnamed = mix_weights(("USR0", "USR1", "USR2", "USR3", "USR4", "USR5"), 2)
    assert unnamed == ((1 / 6,) * 6, (1 / 6,) * 6)  # nothing to place them by: an average


def test_mono_targets_and_refusals() -> None:
    assert mix_weights(("FL", "FR"), 1) == ((0.5, 0.5),)
    assert mix_weights(("FC",), 1) == ((1.0,),)
    with pytest.raises(ValueError, match="no audio channels"):
        mix_weights((), 2)
    with pytest.raises(ValueError, match="to 4"):
        mix_weights(("FL", "FR"), 4)
