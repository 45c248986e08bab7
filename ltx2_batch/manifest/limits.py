"""The hard maxima a manifest must stay within, so validation and planning are bounded whatever the input.

Owns `Limits` (frozen; the `limits` config group carries the same fields, for users who need more) and the
defaults. Each bound is there because without it a short manifest could ask for unbounded work before any
message: a 100000x100000 frame, 10^9 steps, a clip of 10^9 frames planned as 10^7 chunks, YAML aliases that
expand a few lines into millions of nodes, nesting deep enough to exhaust the interpreter's stack.
Pure: must not read files or configs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Maxima, inclusive. The defaults sit well above what LTX-2 renders (4K, 20 min at 24 fps)."""

    max_width: int = 4096  # output pixels
    max_height: int = 4096
    max_num_frames: int = 30_001  # about 21 minutes at 24 fps; chained jobs only
    max_chunks: int = 512  # pipeline calls of one chained job
    max_steps: int = 500  # num_inference_steps
    max_frame_rate: float = 240.0
    max_jobs: int = 2_000_000  # expanded jobs of a manifest (sweeps times entries; prompt files stream)
    max_prompt_chars: int = 20_000  # per prompt (hand-written or a prompts-file row)
    max_image_pixels: int = 8192 * 8192  # conditioning images and reference-video frames (decode bombs)
    max_manifest_bytes: int = 64 << 20
    max_yaml_depth: int = 64  # nesting of lists and mappings in the manifest
    max_alias_nodes: int = 100_000  # extra nodes YAML aliases may add when expanded (alias bombs)
    max_prompt_line_bytes: int = 1 << 20  # one line of a prompts file (a file without newlines is refused)


DEFAULT_LIMITS = Limits()
# The setting a user raises for each bound, named in the refusal so the fix is one override away.
SETTING = "limits.{}"
_SHOWN_BITS = 64  # an integer past 64 bits is shown as "a huge number", not as its digits


Problems = list[tuple[str, str]]  # (field, message), as the other manifest rules return them


def _over(field: str, value: int | float, limit: float, what: str, setting: str) -> tuple[str, str]:
    if isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = f"{value:,}" if value.bit_length() < _SHOWN_BITS else "a huge number"
    return (
        field,
        f"{shown} is over the limit of {limit:,g} {what}; lower it, or raise the limit with "
        f"{SETTING.format(setting)}=<n> if the machine really can",
    )


# The job fields with a maximum: (the `Limits` attribute, the unit its message names).
LIMITED_FIELDS: dict[str, tuple[str, str]] = {
    "width": ("max_width", "pixels"),
    "height": ("max_height", "pixels"),
    "num_frames": ("max_num_frames", "frames"),
    "num_inference_steps": ("max_steps", "steps"),
    "frame_rate": ("max_frame_rate", "frames per second"),
}


def limit_problem(limits: Limits, field: str, value: object) -> tuple[str, str] | None:
    """One job field's number against its maximum (a value of the wrong type is the type check's business)."""
    if field not in LIMITED_FIELDS or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    setting, what = LIMITED_FIELDS[field]
    limit = getattr(limits, setting)
    return _over(field, value, limit, what, setting) if value > limit else None


def chunk_problems(limits: Limits, chunks: int, chunk_frames: int, overlap_frames: int) -> Problems:
    """A chained job's chunk count (at least `chunks`) against the maximum."""
    if chunks <= limits.max_chunks:
        return []
    return [
        (
            "num_frames",
            f"chains into {chunks} or more chunks (chunk_frames {chunk_frames}, overlap {overlap_frames}), "
            f"over the limit of {limits.max_chunks}; shorten the clip, lengthen chaining.chunk_frames or "
            f"raise {SETTING.format('max_chunks')}",
        )
    ]


def text_problem(text: str, limits: Limits) -> str | None:
    """Why a prompt cannot be sent to the text encoder, or None: a NUL byte, or over the length limit."""
    if "\x00" in text:
        return f"contains a NUL character at position {text.index(chr(0))}; remove it"
    if len(text) > limits.max_prompt_chars:
        return (
            f"is {len(text):,} characters, over the limit of {limits.max_prompt_chars:,}; shorten it or "
            f"raise {SETTING.format('max_prompt_chars')}"
        )
    return None


def limits_from(config: object) -> Limits:
    """The frozen `Limits` of a `limits` config group (any object with the same field names)."""
    return Limits(**{name: getattr(config, name) for name in Limits.__dataclass_fields__})
