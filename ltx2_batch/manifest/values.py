"""What kind a manifest value is: the scalar type checks and the words their messages use.

Owns `expect` (is this value of this scalar kind, and if not, the message), the predicates behind it
(`is_int` refuses booleans, `is_number` refuses NaN and infinity) and `type_name`, the YAML-facing name
of a value's type. Must not know which field a value belongs to (the readers do) nor show a value
except through `quote`: a value can be huge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeGuard

from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.vocabulary import KIND_WORDS


def type_name(value: object) -> str:
    """The YAML word for the value's type (mapping, list, string, boolean, null), else its Python name."""
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def is_int(value: object) -> TypeGuard[int]:
    """An integer, not a boolean (YAML `true` is a bool, and a bool is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[float]:
    """A finite int or float: NaN and infinity (YAML `.nan`, `.inf`) are never a valid setting."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


_KIND_CHECKS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": is_int,
    "int?": lambda v: v is None or is_int(v),
    "number": is_number,
    "bool": lambda v: isinstance(v, bool),
    "mapping": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def expect(value: object, kind: str) -> str | None:
    """None when `value` has the scalar `kind`, else the message (kinds: str, int, int?, number, bool)."""
    if _KIND_CHECKS[kind](value):
        return None
    return f"must be {KIND_WORDS.get(kind, 'a ' + kind)}, got {type_name(value)} {quote(value)}"
