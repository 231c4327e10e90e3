"""Package-level import graph of ``sona`` and its cycles (STYLE §11: no cycles between packages).

A node is a first-level part of the package: a subpackage (``sona.ab``, ``sona.serving``) or a
top-level module (``sona.io``). An edge ``a -> b`` means some module of ``a`` imports from
``b``, at module level or inside a function: a lazy import hides a cycle from the interpreter,
not from the design, so both count. Imports under ``if TYPE_CHECKING:`` are skipped, since
they only name a type and never run. The graph is read from source with :mod:`ast`, so
nothing is imported.

Run ``python -m sona.testing.layering [root]`` to print the edges and the cycles.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: the package whose layering is checked
PACKAGE = "sona"


@dataclass(frozen=True, slots=True)
class ImportEdge:
    """One import of package ``target`` by a module of package ``source``."""

    source: str  # first-level part that imports, e.g. "sona.ab"
    target: str  # first-level part imported, e.g. "sona.serving"
    module: str  # the importing module, e.g. "sona.ab.report"
    line: int  # line of the import statement


def package_of(module: str) -> str | None:
    """``sona.ab.report -> sona.ab``; ``sona.io -> sona.io``; None outside :data:`PACKAGE`."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def import_edges(root: Path) -> list[ImportEdge]:
    """Every cross-package import in the source tree ``root`` (the ``sona/`` folder).

    Args:
        root: the package folder; module names are derived from paths below it.

    Returns:
        Edges in file and line order; imports within one first-level part are left out.
    """
    edges = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        source = package_of(module)
        if source is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, target_module in _imports(tree, module, is_package):
            target = package_of(target_module)
            if target is not None and target != source:
                edges.append(ImportEdge(source, target, module, node.lineno))
    return edges


def importers(root: Path, name: str) -> list[str]:
    """Modules under ``root`` that import ``name`` (a module or one name from it).

    ``name`` is ``"mlflow"`` (matches ``import mlflow``, ``from mlflow.x import y``) or
    ``"sqlalchemy.create_engine"`` (matches ``from sqlalchemy import create_engine``). Used to
    check the one-owner rules of STYLE §4 and §11 (one tracking module, one engine factory).
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            if any(n == name or n.startswith(f"{name}.") for n in names):
                found.append(".".join(path.relative_to(root.parent).with_suffix("").parts))
                break
    return found


def find_cycles(edges: list[ImportEdge]) -> list[list[str]]:
    """Strongly connected parts of the package graph with more than one node, sorted.

    Each is reported as its sorted list of packages (Tarjan's algorithm).
    """
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

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
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _imports(tree: ast.Module, module: str, is_package: bool
             ) -> Iterator[tuple[ast.stmt, str]]:
    """``(statement, imported module)`` for each import outside ``if TYPE_CHECKING:``."""
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            # "from sona import io" imports the module sona.io, not the package sona
            for alias in node.names if base == PACKAGE else ():
                yield node, f"{base}.{alias.name}"
            if base != PACKAGE:
                yield node, base


def _walk_runtime(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from (n for stmt in child.orelse for n in (stmt, *_walk_runtime(stmt)))
            continue
        yield child
        yield from _walk_runtime(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    # a package's own name is its __init__; "." means the package itself
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def main(argv: list[str]) -> int:
    """Print the package edges (with one example import each) and the cycles; 1 if any."""
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    edges = import_edges(root)
    seen: dict[tuple[str, str], ImportEdge] = {}
    for edge in edges:
        seen.setdefault((edge.source, edge.target), edge)
    out = sys.stdout
    for (source, target), edge in sorted(seen.items()):
        out.write(f"{source} -> {target}  ({edge.module}:{edge.line})\n")
    cycles = find_cycles(edges)
    for cycle in cycles:
        out.write("cycle: " + " <-> ".join(cycle) + "\n")
        for edge in edges:
            if edge.source in cycle and edge.target in cycle:
                out.write(f"  {edge.module}:{edge.line} imports {edge.target}\n")
    out.write(f"{len(seen)} package edges, {len(cycles)} cycles\n")
    return 1 if cycles else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
