"""Job names: what a name may hold, and the labels sweeps add to it.

Owns `valid_name` (names end up in file names and log lines), the separator between a name and its sweep
labels, and `label` (`seed=3` for a short plain value, `prompt#2` for the rest). Pure.
"""

from __future__ import annotations

import re
import unicodedata

NAME_SEPARATOR = "__"
MAX_NAME_CHARS = 200
_VALID_NAME = re.compile(r"^[^/\\\x00-\x1f]+$")
_INLINE_LABEL = re.compile(r"^[A-Za-z0-9._+-]{1,24}$")
# Control (Cc), format (Cf: bidi overrides, zero-width joiners) and line/paragraph separators: a name
# holding one prints differently from what it is (a bidi override reverses the rest of a log line).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def valid_name(name: object) -> bool:
    """Names may end up in file names and log lines: no separators, control or bidi characters, `.` or
    `..`, at most MAX_NAME_CHARS characters."""
    return (
        isinstance(name, str)
        and name not in (".", "..")
        and len(name) <= MAX_NAME_CHARS
        and bool(_VALID_NAME.match(name))
        and not any(unicodedata.category(c) in _HIDDEN_CATEGORIES for c in name)
    )


def label(key: str, value: object, position: int) -> str:
    """`seed=3` for short plain values, `prompt#2` (0-based position in the list) for the rest."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if isinstance(value, (str, int, float)) and _INLINE_LABEL.match(text):
        return f"{key}={text}"
    return f"{key}#{position}"
