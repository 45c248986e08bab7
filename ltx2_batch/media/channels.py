"""Mixing an audio file's channels to the count a model takes: the weights, from the file's channel layout.

Owns `mix_weights` (docs/behaviour.md, "Driving audio (a2vid)"): one row of weights per output channel, one
column per input channel, so that output = weights @ input. Mono is copied to both sides; stereo is left as
it is; more channels are folded into left and right by their names in the layout (ffmpeg's names: FL, FR,
FC, LFE, BL, SL, ...): the front pair at full level, every other channel of a side at -3 dB (1/sqrt 2) into
that side, a centre channel at -3 dB into both, the LFE left out (as ffmpeg's default downmix leaves it);
a channel whose name says nothing (USR0 ...) at -3 dB into both; then every weight is scaled down by the
largest row sum when that exceeds 1, so that the mix cannot clip (as ffmpeg's rematrixing normalises). A
layout none of whose names say anything is averaged into every output channel.
Must not: read files or import torch (the backend applies the weights to its tensors; a unit test checks
them).
"""

from __future__ import annotations

import math

Weights = tuple[tuple[float, ...], ...]
STEREO = 2
_SIDE = 1 / math.sqrt(2)  # -3 dB
_LEFT_OF_CENTRE, _RIGHT_OF_CENTRE = "FLC", "FRC"


def _side(name: str) -> str | None:
    """'L', 'R', 'C' (both sides), '' (left out: LFE) or None (a name that says nothing)."""
    if name.startswith("LFE"):
        return ""
    if name == _LEFT_OF_CENTRE:
        return "L"
    if name == _RIGHT_OF_CENTRE:
        return "R"
    if name.isalpha() and name.isupper() and name[-1] in "LRC" and not name.startswith("USR"):
        return name[-1]
    return None


def _stereo_weights(names: tuple[str, ...]) -> Weights:
    sides = [_side(n) for n in names]
    if all(s is None for s in sides):  # nothing to place them by: an average, the same in both
        return tuple(tuple(1 / len(names) for _ in names) for _ in range(STEREO))
    rows: list[list[float]] = [[], []]
    for name, side in zip(names, sides, strict=True):
        front = name in ("FL", "FR")
        level = 1.0 if front else _SIDE
        rows[0].append(level if side in ("L", "C") or side is None else 0.0)
        rows[1].append(level if side in ("R", "C") or side is None else 0.0)
    largest = max(sum(row) for row in rows)
    scale = 1 / largest if largest > 1 else 1.0
    return tuple(tuple(w * scale for w in row) for row in rows)


def mix_weights(names: tuple[str, ...], target: int) -> Weights:
    """The weights that mix channels named `names` (the file's layout, in order) to `target` channels: the
    identity when the counts agree; mono copied to every output; more than two folded to stereo (then
    averaged, for a mono target). ValueError for a target this does not define (more than two channels)."""
    count = len(names)
    if count == 0:
        raise ValueError("no audio channels to mix")
    if count == target:
        return tuple(tuple(1.0 if i == j else 0.0 for j in range(count)) for i in range(target))
    if count == 1:
        return tuple((1.0,) for _ in range(target))
    if target > STEREO:
        raise ValueError(f"cannot mix {count} audio channels to {target}")
    stereo = _stereo_weights(names) if count > STEREO else ((1.0, 0.0), (0.0, 1.0))
    if target == STEREO:
        return stereo
    return (tuple((left + right) / 2 for left, right in zip(*stereo, strict=True)),)
