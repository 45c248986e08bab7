"""String enums must not shadow `str`'s own methods: a member named `encode` replaced `str.encode` on every
member of its enum (`OverlapMode.auto.encode()` raised TypeError), which a type checker flags."""

from __future__ import annotations

import enum
import importlib
from pathlib import Path

import ltx2_batch
from ltx2_batch.config import OverlapMode

# the modules that import Ray (the unit tier refuses it); their enums are covered by the type check
RAY_MODULES = (
    "__main__", "runners.ray", "runners.render_worker", "runners.pool_owner", "runners.pool",
    "runners.ray_connect", "run.pool_command",
)  # fmt: skip


def _string_enums() -> list[type[enum.Enum]]:
    """Every str-Enum of the modules that import light (read from the file tree: walking packages would
    import the adapter package, whose modules load torch)."""
    root = Path(ltx2_batch.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        heavy = name.endswith(RAY_MODULES) or (".backends." in name and "fake" not in name)
        if heavy:
            continue  # __main__ runs the CLI; these import torch or Ray (the type check covers their enums)
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, enum.Enum) and issubclass(value, str):
                found.append(value)
    return found


def test_no_string_enum_member_shadows_a_str_method() -> None:
    enums = _string_enums()
    assert enums  # the walk found the package's string enums
    clashes = [f"{e.__module__}.{e.__name__}.{m}" for e in enums for m in e.__members__ if hasattr(str, m)]
    assert clashes == []


def test_overlap_mode_encode_is_a_member_not_a_broken_str_method() -> None:
    assert OverlapMode["encode"] is OverlapMode.encode
    assert OverlapMode("encode").value == "encode"
