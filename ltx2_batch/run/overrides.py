"""Command-line overrides held to the schema before Hydra sees them: a typo is the tool's own refusal.

Owns `override_problems`: every `key=value` naming a setting the typed config lacks (`engine.num_wrkers=2`)
or a group choice that does not exist (`model=ltx2_distiled`), and every value a known setting cannot hold
(`verify=ful`, `seed=abc`), each with the closest real one, so the CLI exits 2 with "did you mean" like
the tool's other refusals instead of Hydra's exit 1 and its own text.
Also `+key=value` and `++key=value`: Hydra lets them add a key the structured config does not declare and
the conversion to the typed dataclasses then drops it, so a misspelt `+output.video_cfr=30` would be
accepted and do nothing. Must not: import Hydra or OmegaConf (the schema is read from the dataclasses
themselves, the group choices from the config folder's file names), or decide what a known key means.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Mapping, Sequence
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


def _missing(key: str, schema: Any) -> str | None:
    """Why the dotted `key` names no setting of `schema`, or None."""
    node, walked = schema, list[str]()
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit():  # `paths.allowed_roots.0=...`: an item of a list
            return None
        names = _children(node)
        if part not in names:
            return _hint(part, walked, names)
        walked.append(part)
        node = getattr(node, part)
    return None


def _choice_problems(override: str, group: str, value: str, choices: Sequence[str]) -> list[str]:
    if "(" in value or value in ("null", ""):  # a sweep function (`range(1,3)`) or a deletion: Hydra's
        return []
    out = []
    for choice in value.split(","):  # `model=tiny,fake` under -m
        if choice not in choices:
            close = difflib.get_close_matches(choice, list(choices), n=1)
            hint = f"did you mean {group}={close[0]}?" if close else f"choices: {', '.join(choices)}"
            out.append(f"{override}: no {group} {choice!r} ({hint})")
    return out


def override_problems(
    overrides: Sequence[str], schema: Any, groups: Mapping[str, Sequence[str]]
) -> list[str]:
    """One message per override that names no setting of `schema` (a dataclass instance, `AppConfig()`) or
    no choice of a config group (`groups`: group -> its choices); flags and Hydra's own keys are Hydra's."""
    problems = added_key_problems(overrides, schema)
    for override in overrides:
        if override.startswith(("-", "+", "~")) or "=" not in override:
            continue
        key, _, value = override.partition("=")
        key = key.partition("@")[0].strip()
        if key == "hydra" or key.startswith(_HYDRA_PREFIXES):
            continue
        if key in groups:
            problems += _choice_problems(override, key, value, groups[key])
            continue
        why = _missing(key, schema)
        if why is not None:
            problems.append(f"{override}: no setting {key!r} ({why})")
            continue
        bad = _value_problem(key, value, schema)
        if bad is not None:
            problems.append(f"{override}: {bad}")
    return problems


_BOOLEANS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"}  # what OmegaConf reads as a bool


def _value_problem(key: str, value: str, schema: Any) -> str | None:
    """Why `value` cannot be what the setting `key` holds (an enum's choices, a number, a bool), or None.
    Values this cannot judge pass through to Hydra: sweeps' functions, interpolations, quoted and list
    values, and settings whose default is null (their type is not on the instance)."""
    if not value or "(" in value or "${" in value or value[0] in "'\"[{":
        return None
    *parents, name = key.split(".")
    node = schema
    for part in parents:
        node = getattr(node, part, None)
    field = (
        next((f for f in dataclasses.fields(node) if f.name == name), None)
        if dataclasses.is_dataclass(node)
        else None
    )
    default = getattr(node, name, None)
    if field is not None:  # the annotation decides (`x: float = 60` holds an int): `int | None` alike
        default = {"int": 0, "float": 0.0, "bool": False}.get(str(field.type).split("|")[0].strip(), default)
    if field is None or default is None:
        return None
    for item in (v.strip() for v in value.split(",")):  # `seed=1,2` under -m: each value
        if item == "null" and "None" in str(field.type):
            continue
        why = _not_a(item, default, key)
        if why is not None:
            return why
    return None


def _not_a(item: str, default: Any, key: str) -> str | None:
    """Why `item` is not a value of `default`'s type, or None."""
    if isinstance(default, enum.Enum):
        values = [str(m.value) for m in type(default)]
        if item in values or item in type(default).__members__:
            return None
        close = difflib.get_close_matches(item, values, n=1)
        hint = f"did you mean {key}={close[0]}?" if close else f"one of: {', '.join(values)}"
        return f"{key} is one of {', '.join(values)}, not {item!r} ({hint})"
    if isinstance(default, bool):
        return None if item.lower() in _BOOLEANS else f"{key} is true or false, not {item!r}"
    kinds: tuple[tuple[type, str], ...] = ((int, "a whole number"), (float, "a number"))
    for kind, words in kinds:
        if isinstance(default, kind):
            try:
                kind(item)
            except ValueError:
                return f"{key} is {words}, not {item!r}"
            return None
    return None


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
