"""String enums must not shadow `str`'s own methods: a member named `encode` replaced `str.encode` on every
member of its enum (`OverlapMode.auto.encode()` raised TypeError), which a type checker flags."""

from __future__ import annotations

import enum
import importlib
import pkgutil

import ltx2_batch
from ltx2_batch.config import OverlapMode

# the modules that import Ray (the unit tier refuses it); their enums are covered by the type check
RAY_MODULES = (
    "__main__", "runners.ray", "runners.render_worker", "runners.pool_owner", "runners.pool",
    "runners.ray_connect", "run.pool_command",
)  # fmt: skip


def _string_enums() -> list[type[enum.Enum]]:
    found = []
    for info in pkgutil.walk_packages(ltx2_batch.__path__, "ltx2_batch."):
        if info.name.endswith(RAY_MODULES) or (".backends." in info.name and "fake" not in info.name):
            continue  # __main__ runs the CLI; these import torch or Ray (the type check covers their enums)
        module = importlib.import_module(info.name)
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
