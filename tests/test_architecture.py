"""The import graph of deploytrack/ (scripts/import_graph.py): no circle, no upward import.

Layers, top to bottom: cli → services → store | evidence | registry | crypto | tlog |
observe, over the shared modules at the package's root (errors, timeutil, digests,
jsondoc). An import may go down or sideways, never up, whether it runs on import, inside a
function or only for the type checker.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import_graph.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


import_graph = _load()

# models.__getattr__ defines the rarely used models on first use by importing lazy_models,
# which builds on models (start-up: see docs/performance.md). The one circle allowed, and
# only through that function-level import.
LAZY_MODELS = ["deploytrack.store.lazy_models", "deploytrack.store.models"]

ADAPTERS = ("store", "evidence", "registry", "crypto", "tlog", "observe")


def layer(module: str) -> int:
    """3 cli, 2 services, 1 adapters, 0 the shared modules at the root."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("cli", "__main__"):
        return 3
    if top == "services":
        return 2
    if top in ADAPTERS:
        return 1
    return 0


@pytest.fixture(scope="module")
def graph() -> object:
    return import_graph.build()


def test_module_level_imports_form_no_circle(graph: object) -> None:
    assert import_graph.cycles(graph.eager) == []  # type: ignore[attr-defined]


def test_function_level_imports_close_no_circle_but_the_lazy_models(graph: object) -> None:
    """connection ↔ migrations and catalog ↔ variables were circles through imports inside
    functions; only the lazily defined models remain, by design."""
    assert import_graph.cycles(graph.with_lazy()) == [LAZY_MODELS]  # type: ignore[attr-defined]


def test_no_module_imports_a_layer_above_its_own(graph: object) -> None:
    upward = sorted(
        f"{source} imports {target}"
        for source, target in graph.every_edge()  # type: ignore[attr-defined]
        if layer(target) > layer(source)
    )
    assert upward == []


def test_the_store_migrations_are_a_leaf_of_the_store(graph: object) -> None:
    """migrations imports no other store module but errors and the event log (whose first
    events a migration writes): connection imports it, not the other way round."""
    edges = graph.with_lazy()  # type: ignore[attr-defined]
    assert edges["deploytrack.store.migrations"] == {
        "deploytrack.store.errors",
        "deploytrack.store.eventlog",
        "deploytrack.timeutil",
    }
    assert "deploytrack.store.connection" not in edges["deploytrack.store.eventlog"]


def test_no_module_imports_another_modules_private_name() -> None:
    """A name used by two modules is public in the one that owns it (or moves where both
    can reach it), at any level of the file: `_name` is private to its module."""
    package = SCRIPT.parent.parent / "deploytrack"
    found = [
        f"{path.relative_to(package.parent)}:{node.lineno}: from {node.module} import {alias.name}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deploytrack")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not found, found


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_the_graph_tells_module_level_from_lazy_and_typing_imports(tmp_path: Path) -> None:
    """What the checks above rely on: a circle through module-level imports is found,
    through a TYPE_CHECKING block or a function it is not (lazy: only with --lazy)."""
    package = write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            "b.py": "try:\n    import pkg.a\nexcept ImportError:\n    pass\n",
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n",
            "d.py": "from pkg.c import something\n",
            "e.py": "def later():\n    from . import f\n",
            "f.py": "from .e import later\nclass K:\n    from pkg import g\n",
            "g.py": "import os\nimport pkg\n",
        },
    )
    graph = import_graph.build(package)
    assert graph.eager["pkg.a"] == {"pkg.b"}
    assert graph.eager["pkg.b"] == {"pkg.a"}
    assert graph.typing["pkg.c"] == {"pkg.d"} and graph.eager["pkg.c"] == set()
    assert graph.eager["pkg.d"] == {"pkg.c"}
    assert graph.lazy["pkg.e"] == {"pkg.f"} and graph.eager["pkg.e"] == set()
    assert graph.eager["pkg.f"] == {"pkg.e", "pkg.g"}  # a class body runs on import
    assert graph.eager["pkg.g"] == {"pkg"}  # os is not ours
    assert import_graph.cycles(graph.eager) == [["pkg.a", "pkg.b"]]
    assert import_graph.cycles(graph.with_lazy()) == [["pkg.a", "pkg.b"], ["pkg.e", "pkg.f"]]


def test_the_script_prints_the_graph_and_fails_on_a_circle(tmp_path: Path) -> None:
    clean = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert clean.returncode == 0, clean.stderr
    assert "store.migrations -> store.errors, timeutil" in clean.stdout
    assert clean.stdout.rstrip().endswith("# circles among module-level imports: none")
    package = write(
        tmp_path, {"__init__.py": "", "a.py": "import pkg.b\n", "b.py": "import pkg.a\n"}
    )
    circular = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert circular.returncode == 1
    assert "# circles among module-level imports: 1\na <-> b" in circular.stdout
