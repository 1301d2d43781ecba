"""The package's layers point one way (``../shared/DESIGN.md``), read from the source without importing it.

Every ``import`` and ``from ... import`` under ``lirlab/`` is an edge, including those inside functions:
a lazy import runs the moment its function does, so it couples the two modules as surely as one at the
top (it only delays the cost). Imports under ``if TYPE_CHECKING:`` never run and are not edges. An edge
points at the module named; ``from package import name`` points at ``package.name`` when that is a
module of ours, else at the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lirlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, str | None]]:
    """``(module, name or None)`` for every import that runs, at any depth."""
    found: list[tuple[str, str | None]] = []
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.extend((base, alias.name) for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for target, attribute in imported_names(tree, name, path.name == "__init__.py"):
            if attribute is not None and f"{target}.{attribute}" in files:
                edges.add(f"{target}.{attribute}")
            elif target in files:
                edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_walker_sees_lazy_relative_and_package_imports():
    source = (
        "import lirlab.data\n"
        "from . import maxsim\n"
        "from .plaid import knobs\n"
        "def f():\n    from lirlab.index import flat\n"
        "if TYPE_CHECKING:\n    from lirlab.cli import main\n"
    )
    names = imported_names(ast.parse(source), "lirlab.index.base", is_package=False)
    assert names == [
        ("lirlab.data", None),
        ("lirlab.index", "maxsim"),
        ("lirlab.index.plaid", "knobs"),
        ("lirlab.index", "flat"),
    ]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_covers_the_package(graph):
    assert {"lirlab.cli", "lirlab.index.base", "lirlab.train.loop", "lirlab.bench.methods"} <= set(graph)
    assert "lirlab.index.base" in graph["lirlab.index.flat"]


def test_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_nothing_below_the_command_imports_it(graph):
    importers = sorted(m for m, edges in graph.items() if "lirlab.cli" in edges and m != "lirlab.cli")
    assert importers == []


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


#: DESIGN.md's "never" list, and training below the benchmarks: (importer, imported) packages.
FORBIDDEN = [
    ("lirlab.maxsim", "lirlab.index"),
    ("lirlab.encoder", "lirlab.index"),
    ("lirlab.index", "lirlab.analysis"),
    ("lirlab.index", "lirlab.plots"),
    ("lirlab.index", "lirlab.widgets"),
    ("lirlab.analysis", "lirlab.widgets"),
    ("lirlab.analysis", "lirlab.bench"),
    ("lirlab.analysis", "lirlab.cli"),
    ("lirlab.train", "lirlab.bench"),
]


@pytest.mark.parametrize("importer, imported", FORBIDDEN)
def test_a_layer_never_imports_one_it_must_not(graph, importer, imported):
    reaching = sorted(
        f"{m} -> {e}"
        for m, edges in graph.items()
        if inside(m, importer)
        for e in edges
        if inside(e, imported)
    )
    assert reaching == []


@pytest.mark.parametrize("top", ["lirlab.bench", "lirlab.cli", "lirlab.demo"])
def test_nothing_below_the_top_layer_imports_it(graph, top):
    layer = ("lirlab.bench", "lirlab.cli", "lirlab.demo")
    importers = sorted(
        m
        for m, edges in graph.items()
        if not any(inside(m, t) for t in layer)
        for e in edges
        if inside(e, top)
    )
    assert importers == []
