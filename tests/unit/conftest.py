"""The unit tier's rule, enforced while it runs: pure Python and pure libraries only.

No process is started (so no CLI launch, no ffmpeg binary, no `ray start`): every way this interpreter
creates one is replaced, for each unit test, by a call that raises `TierViolation`. No model and no Ray:
the first import of torch, ray, ltx_core or ltx_pipelines is refused (under `make test-fast` none is loaded;
in `make test` the integration modules' imports load some at collection, so the ways in are refused too:
`ray.init`, the model adapter, the tiny set builders), and a unit test may not request the session fixtures
that start Ray or build a model. `TierViolation` is a BaseException, so product code that
catches `Exception` around a subprocess cannot turn a violation into an expected error; every violation is
also recorded and fails the test at teardown, whatever caught it. Move a test that needs any of these to
tests/integration. tests/unit/test_tier_rule.py shows that each guard trips.
"""

from __future__ import annotations

import importlib.abc
import multiprocessing.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HEAVY_MODULES = ("torch", "ray", "ltx_core", "ltx_pipelines")
HEAVY_FIXTURES = frozenset({"session_ray", "ray_cluster", "tiny_root", "tiny23_root"})
UNIT_DIR = Path(__file__).resolve().parent


class TierViolation(BaseException):
    """A unit test started a process, imported a heavy module or asked for a heavy fixture."""


class _HeavyImportRefuser(importlib.abc.MetaPathFinder):
    """Refuses the first import of a heavy module (an import of one already loaded never reaches it)."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report

    def find_spec(
        self,
        name: str,
        path: Sequence[str] | None,  # noqa: ARG002 - the finder protocol's signature
        target: ModuleType | None = None,  # noqa: ARG002 - the finder protocol's signature
    ) -> None:
        if name.split(".", maxsplit=1)[0] in HEAVY_MODULES:
            self._report(f"import {name}")
        # not reached for a heavy module: _report raises


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A unit test that asks for Ray or a model set is refused before anything runs."""
    heavy = [
        f"{item.nodeid} uses {sorted(HEAVY_FIXTURES.intersection(item.fixturenames))}"
        for item in items
        if item.path.is_relative_to(UNIT_DIR)
        and HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    ]
    if heavy:
        raise pytest.UsageError("unit tests may not start Ray or build a model:\n  " + "\n  ".join(heavy))


@pytest.fixture(autouse=True)
def unit_tier_rule(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every way to start a process raises for the test's duration, and so does a heavy import. Yields the
    violations recorded so far (test_tier_rule.py trips the guard on purpose, then clears them)."""
    violations: list[str] = []

    def report(what: str) -> None:
        violations.append(what)
        raise TierViolation(f"{what}: the unit tier starts no process and loads no model or Ray")

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*_args: object, **_kwargs: object) -> Any:
            report(what)

        return refused

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("a subprocess"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    monkeypatch.setattr(multiprocessing.util, "spawnv_passfds", refuse("a multiprocessing process"))
    from ltx2_batch.backends import factory, tiny, tiny23

    monkeypatch.setattr(factory, "adapter", refuse("the model adapter"))
    for builder in (tiny, tiny23):
        monkeypatch.setattr(builder, "ensure_tiny_models", refuse(f"building {builder.TINY_DIR_NAME}"))
    if "ray" in sys.modules:  # never imported here: that would be the violation
        monkeypatch.setattr(sys.modules["ray"], "init", refuse("ray.init"))
    refuser = _HeavyImportRefuser(report)
    sys.meta_path.insert(0, refuser)
    try:
        yield violations
    finally:
        sys.meta_path.remove(refuser)
    assert not violations, f"unit tier rule broken: {violations}"
