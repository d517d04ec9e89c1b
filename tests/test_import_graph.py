"""cluster_core's import graph: no cycles (counting imports inside functions and under TYPE_CHECKING),
and the modules the CLI imports before parsing its arguments stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cluster_core

ROOT = Path(cluster_core.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the cluster_core modules it imports anywhere in its source (``from P import m``: P.m if a module)."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else known(base) for a in node.names}
        graph[name] = targets - {"", name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (found := visit(child, path + [child])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert "cluster_core.schema" in graph and "cluster_core.kinds" in graph["cluster_core.schema"]
    assert not any(m.startswith("cluster_core.features") for m in graph["cluster_core.schema"])
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_config_imports_neither_torch_nor_sklearn():
    script = "import sys, cluster_core.config; print(sorted(m for m in ('torch', 'sklearn', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
