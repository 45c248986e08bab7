"""Quoting manifest values inside error messages: short, and cheap whatever the value.

Owns `quote`, the one way a message shows a user's value. A manifest value can be huge (a 100 MB string,
a list of a million items, a structure whose YAML aliases share nodes a million times over), so neither
`repr` nor `json.dumps` may see it whole: `quote` walks only as much of the value as it prints. Must not
judge values or raise.
"""

from __future__ import annotations

from collections.abc import Mapping

QUOTE_LIMIT = 80  # characters of a quoted value in a message
_MAX_DEPTH = 4


class _BudgetError(Exception):
    """Raised inside the walk once the text is long enough."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr`-like text of `value`, cut to about `limit` characters and ending in `...` when cut."""
    parts: list[str] = []
    used = [0]

    def put(text: str) -> None:
        """Append `text`, stopping the walk once the budget is spent."""
        parts.append(text)
        used[0] += len(text)
        if used[0] > limit:
            raise _BudgetError

    def walk(item: object, depth: int) -> None:
        """Quote `item` piece by piece, containers to a bounded depth, so only what is printed is visited."""
        if isinstance(item, str):
            put(repr(item[: limit + 1]))
        elif isinstance(item, (bool, int, float)) or item is None:
            put(_scalar(item, limit))
        elif isinstance(item, Mapping):
            if depth >= _MAX_DEPTH:
                put("{...}")
                return
            put("{")
            for i, (key, sub) in enumerate(item.items()):
                put(", " if i else "")
                walk(key, depth + 1)
                put(": ")
                walk(sub, depth + 1)
            put("}")
        elif isinstance(item, (list, tuple)):
            if depth >= _MAX_DEPTH:
                put("[...]")
                return
            put("[")
            for i, sub in enumerate(item):
                put(", " if i else "")
                walk(sub, depth + 1)
            put("]")
        else:
            put(f"<{type(item).__name__}>")

    try:
        walk(value, 0)
    except _BudgetError:
        return "".join(parts)[: max(limit - 3, 1)] + "..."
    return "".join(parts)


def _scalar(item: object, limit: int) -> str:
    if isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 4 * limit:
        return f"<an integer of {item.bit_length()} bits>"  # str() of a huge int is itself slow
    return repr(item)
