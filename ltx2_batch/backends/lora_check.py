"""Whether a LoRA file can change this model: its tensors against the transformer's weights, read from the two
safetensors headers alone (docs/behaviour.md, "LoRA files"). Torch-free: the driver runs it while it
validates a manifest, so a LoRA with no tensors, or made for another model, is refused before any job runs
instead of rendering "done" with the LoRA silently doing nothing (the official fuser skips every weight it
finds no pair for, and every tensor that names no weight).

Owns: the torch-free copies of the two key renamings the official loader applies (ltx-core's
`LTXV_MODEL_COMFY_RENAMING_MAP` on the checkpoint's transformer keys, `LTXV_LORA_COMFY_RENAMING_MAP` on a
LoRA's keys; tests/integration/test_lora_check.py holds them equal to ltx-core's), the pairing rule of
ltx-core's `apply_loras` (`<weight>.lora_A.weight` and `<weight>.lora_B.weight`, both present, for a
`<weight>.weight` of the transformer; the product `B @ A` shaped as that weight), and `LoraCheck`, which
reads the checkpoint's header once and each LoRA file's once.
Must not: import torch or ltx_core, read tensor data, or judge a file it cannot compare: a checkpoint whose
header lists no transformer tensor (the header-only random sets) checks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ltx2_batch.backends.checkpoint_info import read_safetensors_header
from ltx2_batch.errors import ConfigError

# ltx-core's LTXV_MODEL_COMFY_RENAMING_MAP: keys with this prefix are the transformer's, the prefix dropped
TRANSFORMER_PREFIX = "model.diffusion_model."
# ltx-core's LTXV_LORA_COMFY_RENAMING_MAP: every key matches; each replacement applies wherever it occurs
LORA_REPLACEMENTS = (("diffusion_model.", ""),)
LORA_A, LORA_B, WEIGHT = ".lora_A.weight", ".lora_B.weight", ".weight"
_EXAMPLES = 3
Shapes = Mapping[str, tuple[int, ...]]


def lora_key(key: str) -> str:
    """A LoRA file's key as the official loader renames it."""
    for content, replacement in LORA_REPLACEMENTS:
        if content in key:
            key = key.replace(content, replacement)
    return key


def _tensors(path: str | Path) -> dict[str, tuple[int, ...]]:
    header = read_safetensors_header(path)
    return {
        key: tuple(int(n) for n in entry.get("shape") or ())
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict)
    }


def transformer_weights(checkpoint: str | Path) -> dict[str, tuple[int, ...]]:
    """The transformer's weights (as the official loader names them) and their shapes, from the header."""
    return {
        key.removeprefix(TRANSFORMER_PREFIX): shape
        for key, shape in _tensors(checkpoint).items()
        if key.startswith(TRANSFORMER_PREFIX)
    }


def _pair_part(key: str) -> tuple[str, str, str] | None:
    """(weight name, this part's suffix, its partner's) of a renamed LoRA key; None for other keys."""
    if key.endswith(LORA_A):
        return key.removesuffix(LORA_A), LORA_A, LORA_B
    if key.endswith(LORA_B):
        return key.removesuffix(LORA_B), LORA_B, LORA_A
    return None


def _unmatched(tensors: Shapes, weights: Shapes) -> tuple[list[str], list[str]]:
    """(keys the official fuser would skip, shape disagreements in words)."""
    renamed = {lora_key(key): key for key in tensors}
    skipped, shapes = [], []
    for new, key in renamed.items():
        part = _pair_part(new)
        weight = weights.get(part[0] + WEIGHT) if part else None
        if part is None or weight is None or part[0] + part[2] not in renamed:
            skipped.append(key)
        elif part[1] == LORA_A:  # each pair judged once: B @ A is [out, rank] @ [rank, in]
            a, b = tensors[key], tensors[renamed[part[0] + LORA_B]]
            made = (b[0], a[-1]) if len(a) == len(b) == 2 else None  # noqa: PLR2004 - matrices
            if made is None or a[0] != b[-1] or (made != weight and made[::-1] != weight):
                shapes.append(
                    f"{key!r} and its lora_B make a {_dims(made)} update of a {_dims(weight)} weight"
                )
    return skipped, shapes


def fused_weights(lora: str | Path, weights: Shapes) -> set[str]:
    """The transformer weights the official fuser gives an update from the LoRA file at `lora` (each with
    both parts of its pair present, whatever their shapes)."""
    renamed = {lora_key(key) for key in _tensors(lora)}
    bases = {new.removesuffix(LORA_A) for new in renamed if new.endswith(LORA_A)}
    return {base + WEIGHT for base in bases if base + LORA_B in renamed and base + WEIGHT in weights}


def _dims(shape: tuple[int, ...] | None) -> str:
    return "x".join(str(n) for n in shape) if shape else "mismatched"


def lora_problem(lora: str | Path, weights: Shapes, model: str) -> str | None:
    """Why the LoRA file at `lora` would not change a transformer with `weights` (named `model` in the
    words), or None. Reads its header only."""
    try:
        tensors = _tensors(lora)
    except ConfigError as exc:
        return f"is not a LoRA file: {exc}"
    if not tensors:
        return "has no tensors (a header and nothing else): it would change nothing"
    skipped, shapes = _unmatched(tensors, weights)
    if skipped:
        examples = ", ".join(repr(k) for k in skipped[:_EXAMPLES])
        if len(skipped) == len(tensors):
            what = f"none of its {len(tensors)} tensors is a lora_A/lora_B pair for a weight"
        else:
            what = f"{len(skipped)} of its {len(tensors)} tensors are no lora_A/lora_B pair for any weight"
        return (
            f"{what} of {model}'s transformer (e.g. {examples}): a LoRA for another model? The loader "
            "would skip them without a word"
        )
    if shapes:
        return f"{'; '.join(shapes[:_EXAMPLES])} ({len(shapes)} such): a LoRA for another model?"
    return None


class LoraCheck:
    """LoRA files checked against one checkpoint's transformer, each file once (a callable: path -> problem
    or None). The checkpoint's header is read on the first call."""

    def __init__(self, checkpoint: str | Path) -> None:
        self._checkpoint = Path(checkpoint)
        self._weights: dict[str, tuple[int, ...]] | None = None
        self._seen: dict[str, str | None] = {}

    def _transformer(self) -> dict[str, tuple[int, ...]]:
        if self._weights is None:
            try:
                self._weights = transformer_weights(self._checkpoint)
            except ConfigError:  # the checkpoint's own problem is reported where it is read for the model
                self._weights = {}
        return self._weights

    def __call__(self, lora: str | Path) -> str | None:
        key = str(lora)
        if key not in self._seen:
            weights = self._transformer()
            self._seen[key] = lora_problem(lora, weights, self._checkpoint.name) if weights else None
        return self._seen[key]
