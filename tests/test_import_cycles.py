"""No two modules of `pan` or `pan_kernels` import each other, directly or round a longer loop, counting imports
made inside functions too (a lazy import hides a cycle until the wrong module is imported first).

Package `__init__` modules are left out: a package re-exporting its submodules is not a cycle of modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Cycles known when this test was written, each to be broken by moving the shared pieces into a third module (as
# pan.models.torchvision_backbones did for torchvision_pan / torchvision_stn); remove an entry once it is gone.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def _module_graph(package: str) -> dict[str, set[str]]:
    """module name -> the modules of `package` it imports (absolute imports; `from a import b` counts a.b)."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in (ROOT / package).rglob("*.py")
             if p.name != "__init__.py"}
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.update(c for c in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if c in files)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in files)
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_a_lazy_two_module_cycle():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


@pytest.mark.parametrize("package", ["pan", "pan_kernels"])
def test_no_new_import_cycles(package):
    assert [c for c in _cycles(_module_graph(package)) if tuple(c) not in KNOWN_CYCLES] == []


def test_known_cycles_are_still_there():
    """A known cycle that has been broken must leave KNOWN_CYCLES, so it cannot come back unnoticed."""
    found = {tuple(c) for c in _cycles(_module_graph("pan"))}
    assert KNOWN_CYCLES <= found, f"no longer a cycle, remove from KNOWN_CYCLES: {KNOWN_CYCLES - found}"
