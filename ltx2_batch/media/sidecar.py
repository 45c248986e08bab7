"""The JSON sidecar written next to each output: what was rendered, how, and what the file holds.

Owns: a stable serialization (sorted keys, indent 2, strict JSON: no NaN/Infinity) of the values our
payloads carry (numpy scalars and arrays, anything with `.tolist()` such as a tensor, enums, dataclasses
such as MediaInfo or RenderJob, paths, sets) and writing it atomically.
Must not decide what goes into the payload (the runner does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ltx2_batch.errors import MediaError
from ltx2_batch.media.write import atomic_target


def to_jsonable(value: Any) -> Any:  # noqa: PLR0911 - one return per JSON-able type, in the order the checks must run
    """Plain JSON types for `value`, recursively. Unknown types raise MediaError naming the type."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=repr)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # torch tensors, array.array: serialized without importing their library
        return to_jsonable(tolist())
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise MediaError(f"sidecar: cannot serialize a value of type {type(value).__name__}")


def _number(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise MediaError(f"sidecar: {value} is not valid JSON")
    return value


def _key(key: Any) -> str:
    key = to_jsonable(key)
    if not isinstance(key, (str, int, float, bool)):
        raise MediaError(f"sidecar: dict key of type {type(key).__name__} is not a JSON key")
    return key if isinstance(key, str) else json.dumps(key)


def sidecar_text(payload: dict[str, Any]) -> str:
    """The exact text `write_sidecar` writes (sorted keys, indent 2, trailing newline)."""
    return json.dumps(to_jsonable(payload), sort_keys=True, indent=2, allow_nan=False) + "\n"


def write_sidecar(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` as JSON at `path`, atomically (temporary name in the same folder, then rename)."""
    text = sidecar_text(payload)  # serialize first: a bad value leaves the old sidecar, if any, untouched
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar's JSON object; MediaError when it cannot be read, does not parse, or is not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MediaError(f"cannot read sidecar {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MediaError(f"sidecar {path} does not hold a JSON object")
    return data
