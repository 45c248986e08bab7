"""The shape of the code (read from the source, not run): every module and function of the package stays small
(500 and 80 lines), and the adapter's shared blocks name no pipeline kind, so a new recipe is one module plus
one row in the recipe table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ltx2_batch"
BACKENDS = PACKAGE / "backends"
ADAPTER = BACKENDS / "ltx2"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _functions(tree: ast.AST) -> list[tuple[str, int]]:
    return [
        (node.name, node.end_lineno - node.lineno + 1)  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def _recipe_modules() -> set[str]:
    """The modules the recipe table (recipes.py) imports a recipe from: everything else is a shared block."""
    tree = ast.parse((ADAPTER / "recipes.py").read_text())
    prefix = "ltx2_batch.backends.ltx2."
    return {
        node.module.removeprefix(prefix)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix)
    } - {"recipe"}


def _kinds_named(path: Path) -> list[str]:
    """`PipelineKind.X` members the module's code reads (annotations naming the type are fine)."""
    return [
        f"PipelineKind.{node.attr}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "PipelineKind"
    ]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    assert [(name, n) for name, n in _functions(ast.parse(text)) if n > MAX_FUNCTION_LINES] == []


def test_the_shared_blocks_name_no_pipeline_kind() -> None:
    recipes = _recipe_modules()
    assert {"distilled", "ti2vid", "keyframe", "ic_lora", "hq", "a2vid", "retake"} <= recipes
    blocks = [p for p in ADAPTER.glob("*.py") if p.stem not in recipes | {"recipes"}]
    assert {p.stem for p in blocks} >= {"backend", "stage", "staged", "text", "decode"}
    assert {p.stem: _kinds_named(p) for p in blocks if _kinds_named(p)} == {}


def test_the_kind_finder_sees_a_kind() -> None:
    """The rule above can fail: a recipe module names its kind, and the finder sees it."""
    assert _kinds_named(ADAPTER / "distilled.py") == ["PipelineKind.DISTILLED"]
