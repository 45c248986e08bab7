"""The package's import graph: no cycles, the layer rules of backends/, and the modules that must not import
the heavy runtimes (read from the source, not run).

Every `import` statement counts, including those inside functions and under TYPE_CHECKING: a lazy import
hides a cycle from Python's import machinery but not from a reader.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ltx2_batch"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module of the package (in `known`) that `path` imports, and every outside top-level package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from ltx2_batch.backends import compat` imports the module ltx2_batch.backends.compat
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
    return {name if name in known else name.split(".")[0] for name in found}


@functools.cache
def _parsed_graph() -> tuple[tuple[str, frozenset[str]], ...]:
    """Parsed once per session: each test gets its own copy (`_full_graph`) to plant edges in."""
    modules = _modules()
    known = set(modules)
    return tuple((name, frozenset(_imports(path, known))) for name, path in modules.items())


def _full_graph() -> dict[str, set[str]]:
    """Module -> what it imports: modules of the package, and outside packages by their top-level name."""
    return {name: set(deps) for name, deps in _parsed_graph()}


def _graph() -> dict[str, set[str]]:
    """The package's own import graph (outside packages left out)."""
    graph = _full_graph()
    return {name: deps & graph.keys() for name, deps in graph.items()}


def _reached(graph: dict[str, set[str]], module: str) -> set[str]:
    """Every module and outside package that importing `module` can import: its imports, theirs, and the
    `__init__` of each package on the way (importing a.b.c runs a/__init__.py and a/b/__init__.py)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in graph]
        todo += graph.get(name, set())
    return seen - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = _graph()
    graph["ltx2_batch.backends.models"] = graph["ltx2_batch.backends.models"] | {
        "ltx2_batch.backends.weights"
    }
    assert ["ltx2_batch.backends.models", "ltx2_batch.backends.weights"] in _cycles(graph)


ADAPTER = "ltx2_batch.backends.ltx2"  # the adapter package: Ltx2Backend and its recipe modules


def _in_adapter(name: str) -> bool:
    return name == ADAPTER or name.startswith(ADAPTER + ".")


def _ltx_pipelines_importers_outside(imports: dict[str, set[str]]) -> list[str]:
    """Modules outside the adapter package that import ltx_pipelines (`imports`: every module's imports)."""
    return sorted(name for name, deps in imports.items() if "ltx_pipelines" in deps and not _in_adapter(name))


def _adapter_importers_outside(graph: dict[str, set[str]]) -> list[str]:
    """Modules outside the adapter package that import any module of it."""
    return sorted(
        name for name, deps in graph.items() if not _in_adapter(name) and any(_in_adapter(d) for d in deps)
    )


def _all_imports() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) for name, path in modules.items()}


def test_only_the_adapter_package_imports_ltx_pipelines() -> None:
    imports = _all_imports()
    assert _ltx_pipelines_importers_outside(imports) == []
    # the rule speaks of modules that exist: the adapter's own modules are the importers
    assert f"{ADAPTER}.backend" in {name for name, deps in imports.items() if "ltx_pipelines" in deps}


def test_nothing_but_the_factory_imports_the_adapter() -> None:
    """The factory applies the compat shims first; any other importer could load ltx_core without them."""
    assert _adapter_importers_outside(_graph()) == ["ltx2_batch.backends.factory"]


def test_the_adapter_rules_find_planted_violations() -> None:
    """Each rule above fails when a module outside the package reaches into it."""
    imports = _all_imports()
    imports["ltx2_batch.chaining.run"] = imports["ltx2_batch.chaining.run"] | {"ltx_pipelines"}
    assert _ltx_pipelines_importers_outside(imports) == ["ltx2_batch.chaining.run"]
    graph = _graph()
    graph["ltx2_batch.chaining.run"] = graph["ltx2_batch.chaining.run"] | {f"{ADAPTER}.stage"}
    assert "ltx2_batch.chaining.run" in _adapter_importers_outside(graph)


@pytest.mark.parametrize(
    "module",
    ["ltx2_batch.backends.device", "ltx2_batch.backends.caches", "ltx2_batch.backends.weights"],
)
def test_lower_backend_layers_do_not_reach_up(module: str) -> None:
    """device/caches/weights sit below the adapter and the factory."""
    deps = _graph()[module]
    assert not any(_in_adapter(d) for d in deps)
    assert "ltx2_batch.backends.factory" not in deps


# Validating, expanding and planning a manifest happens on the driver before any model loads (and in the
# unit tests): the manifest package must not pull in a model runtime, a cluster or Hydra, directly or
# through the rest of the package. Lazy (in-function) imports count too.
HEAVY = frozenset({"torch", "ray", "ltx_core", "ltx_pipelines", "hydra", "omegaconf"})
LIGHT_PACKAGES = ("ltx2_batch.manifest",)


def _heavy_imports(graph: dict[str, set[str]], module: str) -> list[str]:
    return sorted(_reached(graph, module) & HEAVY)


def _light_modules() -> list[str]:
    return sorted(m for m in _modules() if any(m == p or m.startswith(p + ".") for p in LIGHT_PACKAGES))


@pytest.mark.parametrize("module", _light_modules())
def test_the_manifest_core_imports_no_torch_ray_ltx_core_or_hydra(module: str) -> None:
    assert _heavy_imports(_full_graph(), module) == []


def test_the_heavy_import_rule_finds_planted_imports() -> None:
    """A heavy import two modules down, or in a package's __init__, is found from a module above it."""
    graph = _full_graph()
    assert "ltx2_batch.manifest.quote" in _reached(graph, "ltx2_batch.manifest.load")
    through_a_leaf = {**graph, "ltx2_batch.manifest.quote": graph["ltx2_batch.manifest.quote"] | {"torch"}}
    assert _heavy_imports(through_a_leaf, "ltx2_batch.manifest.load") == ["torch"]
    through_the_package = {**graph, "ltx2_batch": graph["ltx2_batch"] | {"ray"}}
    assert _heavy_imports(through_the_package, "ltx2_batch.manifest.vocabulary") == ["ray"]


# engine=ray: the driver plans, records and dispatches; the render workers import torch and the LTX packages.
# Importing the driver's modules loads none of them, and the only functions of those modules (and of what they
# import) that import one are these, each run by a render worker only (or by the local engine's own checks).
RAY_DRIVER = (
    "ltx2_batch.cli",
    "ltx2_batch.run.session",
    "ltx2_batch.runners.ray",
    "ltx2_batch.run.pool_command",
)
MODEL_RUNTIME = frozenset({"torch", "torchaudio", "torchao", "transformers", "ltx_core", "ltx_pipelines"})
WORKER_ONLY = {
    ("ltx2_batch.backends.device", "choose_device_policy"): "a worker choosing its device (local: the check)",
    ("ltx2_batch.backends.device", "device_free_bytes"): "a worker sizing its memory plan",
    ("ltx2_batch.backends.factory", "adapter"): "a worker building its backend",
    ("ltx2_batch.backends.quantize", "_fp8_scaled_problem"): "a worker checking its device for fp8 matmuls",
    ("ltx2_batch.backends.quantize", "linear_layers"): "a worker quantizing its transformer",
    ("ltx2_batch.backends.quantize", "quantize_fp8_scaled"): "a worker quantizing its transformer",
    ("ltx2_batch.chaining.state", "save_chunk_state"): "a worker storing a chained job's resume state",
}  # fmt: skip


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports_by_place(path: Path, known: set[str]) -> tuple[set[str], list[tuple[str, set[str]]]]:
    """What importing `path` runs (module level, class bodies included, TYPE_CHECKING left out), and each
    import inside a function, with the outermost function it is in."""
    at_import: set[str] = set()
    in_functions: list[tuple[str, set[str]]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found = _imported(child, known)
                if function is None:
                    at_import.update(found)
                else:
                    in_functions.append((function, found))
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
            visit(child, function or inner or ("<lambda>" if isinstance(child, ast.Lambda) else None))

    visit(ast.parse(path.read_text(), filename=str(path)), None)
    return at_import, in_functions


def _imported(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names.update(alias.name for alias in node.names)
    elif node.module and node.level == 0:
        names.add(node.module)
        names.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
    return {name if name in known else name.split(".")[0] for name in names}


def test_the_ray_driver_imports_no_model_runtime_and_only_worker_functions_would() -> None:
    modules = _modules()
    known = set(modules)
    places = {name: _imports_by_place(path, known) for name, path in modules.items()}
    at_import = {name: place[0] for name, place in places.items()}
    loaded = set().union(*(_reached(at_import, root) | {root} for root in RAY_DRIVER))
    assert not loaded & MODEL_RUNTIME, sorted(loaded & MODEL_RUNTIME)
    lazy = {
        (module, function)
        for module in sorted(loaded & known)
        for function, imported in places[module][1]
        if set().union(*(_reached(at_import, name) | {name} for name in imported)) & MODEL_RUNTIME
    }
    assert lazy == set(WORKER_ONLY), sorted(lazy ^ set(WORKER_ONLY))
