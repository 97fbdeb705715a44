"""The layout is the architecture (DEVELOPERS.md, STYLE.md): arrows point inwards.

Every ``import`` in ``src/updog`` — at module level or inside a function — is an arrow from
one part of the system (a top-level module of the package: ``finance``, ``service``,
``api``, …) to another. The graph of parts has no cycle, and the engines (``finance``,
``model``, ``simulation``) import nothing from the layers around them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "updog"
ENGINES = {"finance", "model", "simulation"}


def _part(module: str) -> str | None:
    """``updog.api.routes.funds`` → ``api``; the package root (``updog``) is no part."""
    pieces = module.split(".")
    if pieces[0] != "updog" or len(pieces) < 2:
        return None
    return pieces[1]


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Part → the other parts it imports (every import statement of every module). A part is
    a subpackage or a module directly under ``root`` (not ``__init__`` or ``__main__``)."""
    parts = {p.name for p in root.iterdir() if (p / "__init__.py").exists()} | {
        p.stem for p in root.glob("*.py") if p.stem not in ("__init__", "__main__")
    }
    graph: dict[str, set[str]] = {part: set() for part in parts}
    for path in root.rglob("*.py"):
        relative = path.relative_to(root.parent).with_suffix("")
        here = _part(".".join(relative.parts))
        if here not in parts:
            continue
        package = relative.parts if path.name == "__init__.py" else relative.parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: ``..gamma`` from updog.beta.mod is updog.gamma
                    anchor = list(package[: len(package) - node.level + 1])
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                there = _part(target)
                if there in parts and there != here:
                    graph[here].add(there)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one part (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_parts_of_the_system_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert {"finance", "model", "simulation", "service", "http", "api", "web"} <= set(graph)
    assert cycles(graph) == [], graph


def test_the_engines_import_no_service_layer() -> None:
    graph = import_graph()
    for engine in sorted(ENGINES):
        assert graph[engine] <= ENGINES, (engine, sorted(graph[engine] - ENGINES))


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_local_and_relative_imports_count(tmp_path: Path) -> None:
    root = tmp_path / "updog"
    for part in ("alpha", "beta", "gamma"):
        (root / part).mkdir(parents=True)
        (root / part / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "alpha" / "mod.py").write_text("def f():\n    from updog.beta import x\n")
    (root / "beta" / "mod.py").write_text("from ..gamma import y\n")
    assert import_graph(root) == {"alpha": {"beta"}, "beta": {"gamma"}, "gamma": set()}
