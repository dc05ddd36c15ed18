"""The shape of the code: imports point down the layers of docs/DESIGN.md, and functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[1]
# Bottom up. A package may import the ones before it; cli and dashboards sit side by side on top
# (cli serves the dashboards' page).
LAYERS = ["kernel_space", "storage", "qwen3", "tuner", "dashboards", "cli"]
ALLOWED = {pkg: set(LAYERS[:i]) for i, pkg in enumerate(LAYERS)}
MAX_COMPLEXITY = 20


def _sources(pkg: str):
    return sorted((ROOT / pkg).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & set(LAYERS)


def import_graph() -> dict[str, set[str]]:
    """Package -> the other packages of ours it imports (at any depth, lazy imports included)."""
    return {pkg: set().union(*(_imported_packages(f) for f in _sources(pkg))) - {pkg} for pkg in LAYERS}


def test_imports_point_down_the_layers():
    upward = {pkg: sorted(deps - ALLOWED[pkg]) for pkg, deps in import_graph().items() if deps - ALLOWED[pkg]}
    assert not upward, f"imports that point up the layers: {upward}"


def test_kernel_space_is_the_bottom():
    assert import_graph()["kernel_space"] == set()


def test_the_package_graph_has_no_cycle():
    graph, state = import_graph(), {}

    def visit(pkg, path):
        if state.get(pkg) == "open":
            pytest.fail(f"import cycle: {' -> '.join([*path, pkg])}")
        if state.get(pkg) != "done":
            state[pkg] = "open"
            for dep in sorted(graph[pkg]):
                visit(dep, [*path, pkg])
            state[pkg] = "done"

    for pkg in LAYERS:
        visit(pkg, [])


@pytest.mark.parametrize("pkg", LAYERS)
def test_no_function_is_too_complex(pkg):
    too_complex = []
    for path in _sources(pkg):
        for block in cc_visit(path.read_text()):
            if block.complexity > MAX_COMPLEXITY:
                too_complex.append(f"{path.relative_to(ROOT)}:{block.lineno} {block.name} ({block.complexity})")
    assert not too_complex, f"cyclomatic complexity above {MAX_COMPLEXITY}: {too_complex}"
