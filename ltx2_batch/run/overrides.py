"""Command-line overrides that add keys: `+key=value` and `++key=value` are held to the schema like typos.

Hydra lets `+`/`++` add a key the structured config does not declare; the conversion to the typed
dataclasses then drops it, so a misspelt `+output.video_cfr=30` would be accepted and do nothing. This
module names every such key (with the closest real one) so the CLI can refuse the run.
Must not: import Hydra or OmegaConf (the schema is read from the dataclasses themselves), or decide what a
known key means.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from typing import Any

# Hydra's own tree (`++hydra.job.name=...`, `+hydra/launcher=...`) is Hydra's business, not the schema's.
_HYDRA_PREFIXES = ("hydra.", "hydra/")


def _added_key(override: str) -> str | None:
    """The dotted key an `+`/`++` override adds, without a `@package` suffix; None for other overrides."""
    if not override.startswith("+"):
        return None
    key = override.lstrip("+").partition("=")[0].partition("@")[0].strip()
    return None if key == "hydra" or key.startswith(_HYDRA_PREFIXES) else key.replace("/", ".")


def _children(node: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _hint(part: str, walked: list[str], names: list[str]) -> str:
    if not names:
        return f"{'.'.join(walked)} is a value, not a section"
    close = difflib.get_close_matches(part, names, n=1)
    if close:
        return f"did you mean {'.'.join([*walked, close[0]])}?"
    return f"{'.'.join(walked) or 'the top level'} has: {', '.join(names)}"


def added_key_problems(overrides: Sequence[str], schema: Any) -> list[str]:
    """One message per added key that `schema` (a dataclass instance, e.g. `AppConfig()`) lacks."""
    problems = []
    for override in overrides:
        key = _added_key(override)
        if key is None:
            continue
        node, walked = schema, list[str]()
        for part in key.split("."):
            names = _children(node)
            if part not in names:
                hint = _hint(part, walked, names)
                problems.append(f"{override}: no setting {key!r} ({hint}); `+`/`++` cannot add settings")
                break
            walked.append(part)
            node = getattr(node, part)
    return problems
