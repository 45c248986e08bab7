"""Unknown keys and "did you mean": how a manifest's misspelt or misplaced key is reported.

Owns `suggest` (the closest valid name, or the list of valid ones), `unknown_keys` (every key of a
mapping not in its section, each with a suggestion) and `check_mapping` (a nested section's shape: a
mapping, with known keys). Must not judge values: a key's value is the readers' business.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.values import type_name

MIN_PREFIX_CHARS = 3  # a typed prefix this long or longer is matched against valid names
_SHOWN_KEY_CHARS = 200  # a key can be as huge as a value: it is cut before it is matched or shown


def suggest(key: str, valid: Collection[str]) -> str:
    """A hint for an unknown `key`: the closest valid name (by similarity, else prefix), or the valid ones."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    close = (
        close
        or [v for v in valid if len(key) >= MIN_PREFIX_CHARS and (v.startswith(key) or key.startswith(v))][:1]
    )
    return f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"


def unknown_keys(mapping: Iterable[object], valid: Collection[str]) -> list[tuple[str, str]]:
    """(key, message) for every key of `mapping` not in `valid`, each with a suggestion."""
    out = []
    for k in mapping:
        if not isinstance(k, str) or k not in valid:
            text = k[:_SHOWN_KEY_CHARS] if isinstance(k, str) else quote(k, _SHOWN_KEY_CHARS)
            out.append((text, f"unknown key {quote(k)}; {suggest(text, valid)}"))
    return out


def check_mapping(value: object, valid: Collection[str], field: str) -> list[tuple[str, str]]:
    """(field, message) problems of the nested mapping at `field`: its shape and keys, not its values."""
    if not isinstance(value, dict):
        return [(field, f"must be a mapping with keys {', '.join(valid)}, got {type_name(value)}")]
    return [(f"{field}.{key}" if key else field, message) for key, message in unknown_keys(value, valid)]
