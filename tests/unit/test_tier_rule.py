"""The unit tier's guard (tests/unit/conftest.py) trips: a subprocess, a fork or a heavy import inside a
unit test raises, and the heavy modules are not loaded when this tier runs (else the import guard could
not see them being used)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.conftest import HEAVY_FIXTURES, HEAVY_MODULES, UNIT_DIR, TierViolation


def test_starting_a_process_is_refused(unit_tier_rule: list[str]) -> None:
    with pytest.raises(TierViolation, match="a subprocess"):
        subprocess.run(["true"], check=False)
    with pytest.raises(TierViolation, match=r"os\.fork"):
        os.fork()
    assert unit_tier_rule == ["a subprocess", "os.fork"]  # recorded too, whatever caught the raise
    unit_tier_rule.clear()  # tripped on purpose


def test_the_heavy_modules_are_not_loaded_when_the_tier_runs_alone(request: pytest.FixtureRequest) -> None:
    """Under `make test-fast` nothing loads them before a unit test does: a conftest, plugin or helper that
    imported one at module level (rather than inside the fixture that needs it) would blind the import
    guard. (A whole-suite run's integration modules do, at collection: there the ways in are refused.)"""
    if any(not item.path.is_relative_to(UNIT_DIR) for item in request.session.items):
        pytest.skip("integration modules were collected too: they load torch and Ray at import")
    assert [name for name in HEAVY_MODULES if name in sys.modules] == []


@pytest.mark.parametrize("name", HEAVY_MODULES)
def test_importing_a_heavy_module_is_refused(name: str, unit_tier_rule: list[str]) -> None:
    if name in sys.modules:
        pytest.skip(f"{name} was loaded at collection (a whole-suite run)")
    with pytest.raises(TierViolation, match=f"import {name}"):
        __import__(name)
    assert name not in sys.modules
    unit_tier_rule.clear()


def test_the_ways_into_a_model_or_ray_are_refused(tmp_path: Path, unit_tier_rule: list[str]) -> None:
    from ltx2_batch.backends.factory import create_backend
    from ltx2_batch.backends.tiny import ensure_tiny_models
    from ltx2_batch.config import ModelConfig

    with pytest.raises(TierViolation):  # whichever comes first: torch (device), the set's build, the adapter
        create_backend(ModelConfig(root=str(tmp_path)), tmp_path)
    with pytest.raises(TierViolation, match="building tiny"):
        ensure_tiny_models(tmp_path / "tiny")
    assert not (tmp_path / "tiny").exists()
    unit_tier_rule.clear()


def test_no_unit_module_names_a_heavy_fixture_or_a_process() -> None:
    """The static half of the rule, for tests the runtime guard would only catch when they run: no unit test
    module imports subprocess or a heavy module, or takes a heavy fixture as an argument."""
    offenders = []
    for path in sorted(UNIT_DIR.glob("test_*.py")):
        if path.name == "test_tier_rule.py":
            continue  # this file names them on purpose
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                taken = {arg.arg for arg in node.args.args} & HEAVY_FIXTURES
                names = [f"fixture {name}" for name in sorted(taken)]
            else:
                continue
            for name in names:
                root = name.split(".")[0].split(" ")[0]
                if root in {"subprocess", "multiprocessing", "pty", *HEAVY_MODULES} or name.startswith(
                    "fixture"
                ):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == []


def _top_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of the imports a module runs when it is imported (not those inside functions)."""
    found = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_the_shared_fixture_modules_import_torch_lazily() -> None:
    """conftest.py and the plugins it loads (tests/fixtures/) are imported by every run, the unit tier's
    included: they may not load a heavy module when imported, directly or through the package (the tiny
    backends import torch inside the fixtures that build them)."""
    from tests.unit.test_import_graph import _modules

    modules = _modules()

    def loads(module: str) -> set[str]:
        """What importing `module` runs into: its module-level imports, theirs, and each package's
        __init__ on the way (lazy imports inside functions do not count: they run when called)."""
        seen: set[str] = set()
        todo = [module]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            parts = name.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]
            if name in modules:
                todo += [m for _, m in _top_level_imports(modules[name])]
        return {name.split(".")[0] if name not in modules else name for name in seen}

    tests_dir = UNIT_DIR.parent
    offenders = []
    for path in [tests_dir / "conftest.py", *sorted((tests_dir / "fixtures").glob("*.py"))]:
        for line, module in _top_level_imports(path):
            heavy = sorted(loads(module) & set(HEAVY_MODULES))
            if heavy:
                offenders.append(f"{path.relative_to(tests_dir)}:{line}: {module} -> {heavy}")
    assert offenders == []
    assert "torch" in loads("ltx2_batch.backends.ltx2.backend")  # the rule sees a module-level torch import


def test_the_guard_is_the_unit_tiers_own(request: pytest.FixtureRequest) -> None:
    assert "unit_tier_rule" in request.fixturenames
    assert Path(request.node.path).is_relative_to(UNIT_DIR)
