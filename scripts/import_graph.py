"""Print the import graph of deploytrack/ and any circle in it, read from the source (AST).

    python scripts/import_graph.py            # module-level imports, then the circles
    python scripts/import_graph.py --lazy     # also the imports made inside functions,
                                              # and the circles counting them

An edge is "module-level" when the import runs when the module is imported: statements
of the module's body, including those under a module-level `if`/`try`/`with` and in
class bodies. Excluded from it, and from the circle check: `if TYPE_CHECKING:` blocks
(never run) and imports inside functions (run on first call: the lazy imports that keep
start-up short), which `--lazy` lists in a section of their own. Only imports of
deploytrack's own modules are edges; `from deploytrack.store import models` is an edge to
the module `deploytrack.store.models`, `from deploytrack.store import Store` one to the
package `deploytrack.store`. Exit status 1 when module-level imports form a circle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "deploytrack"


@dataclass
class Graph:
    """Edges by importing module: `eager` run on import, `lazy` inside functions,
    `typing` under `if TYPE_CHECKING:`."""

    modules: list[str]
    package: str = "deploytrack"
    eager: dict[str, set[str]] = field(default_factory=dict)
    lazy: dict[str, set[str]] = field(default_factory=dict)
    typing: dict[str, set[str]] = field(default_factory=dict)

    def with_lazy(self) -> dict[str, set[str]]:
        """Module-level and function-level edges together."""
        return {m: self.eager.get(m, set()) | self.lazy.get(m, set()) for m in self.modules}

    def every_edge(self) -> Iterator[tuple[str, str]]:
        for edges in (self.eager, self.lazy, self.typing):
            for source, targets in edges.items():
                for target in targets:
                    yield source, target


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    node: ast.AST, context: str, kinds: dict[str, list[ast.Import | ast.ImportFrom]]
) -> None:
    """Sort the imports under `node` by when they run: 'eager', 'lazy' or 'typing'."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            kinds[context].append(child)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            _imports(child, "typing" if context == "typing" else "lazy", kinds)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                _imports(ast.Module(body=[statement], type_ignores=[]), "typing", kinds)
            for statement in child.orelse:
                _imports(ast.Module(body=[statement], type_ignores=[]), context, kinds)
        else:
            _imports(child, context, kinds)


def _targets(
    statement: ast.Import | ast.ImportFrom, importer: str, is_package: bool, known: set[str]
) -> set[str]:
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
        return {_nearest(name, known) for name in names} - {""}
    base = statement.module or ""
    if statement.level:
        package = importer.split(".")
        if not is_package:
            package.pop()
        package = package[: len(package) - (statement.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = set()
    for alias in statement.names:
        submodule = f"{base}.{alias.name}"
        found.add(submodule if submodule in known else _nearest(base, known))
    return found - {""}


def _nearest(name: str, known: set[str]) -> str:
    """`name` or its closest enclosing module of ours; '' for another package's."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return ""


def build(root: Path = ROOT) -> Graph:
    paths = sorted(root.rglob("*.py"))
    names = {module_name(p, root): p for p in paths}
    graph = Graph(modules=sorted(names), package=root.name)
    known = set(names)
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        kinds: dict[str, list[ast.Import | ast.ImportFrom]] = {
            "eager": [],
            "lazy": [],
            "typing": [],
        }
        _imports(tree, "eager", kinds)
        for kind, statements in kinds.items():
            edges = getattr(graph, kind).setdefault(name, set())
            for statement in statements:
                edges |= _targets(statement, name, path.name == "__init__.py", known)
            edges.discard(name)
    return graph


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def render(graph: Graph, *, lazy: bool) -> str:
    def _short(name: str) -> str:
        return name.removeprefix(graph.package + ".")

    lines = [
        f"# module-level imports of {graph.package}/ (`if TYPE_CHECKING:` blocks and imports",
        f"# inside functions excluded); names relative to {graph.package}.",
    ]
    for name in graph.modules:
        targets = sorted(_short(t) for t in graph.eager.get(name, ()))
        lines.append(f"{_short(name)} -> {', '.join(targets) if targets else '(nothing)'}")
    if lazy:
        lines += ["", "# imports inside functions (run on first call)"]
        for name in graph.modules:
            targets = sorted(_short(t) for t in graph.lazy.get(name, ()))
            if targets:
                lines.append(f"{_short(name)} ~> {', '.join(targets)}")

    def _circles(what: str, found: list[list[str]]) -> list[str]:
        if not found:
            return [f"# circles among {what}: none"]
        return [
            f"# circles among {what}: {len(found)}",
            *(" <-> ".join(_short(m) for m in component) for component in found),
        ]

    lines += ["", *_circles("module-level imports", cycles(graph.eager))]
    if lazy:
        lines += _circles("imports, counting those inside functions", cycles(graph.with_lazy()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lazy", action="store_true", help="also list function-level imports")
    parser.add_argument("--root", type=Path, default=ROOT, help="the package folder")
    args = parser.parse_args(argv)
    graph = build(args.root)
    print(render(graph, lazy=args.lazy))
    return 1 if cycles(graph.eager) else 0


if __name__ == "__main__":
    sys.exit(main())
