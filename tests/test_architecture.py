"""The shape of ``src/uegan``: no import cycle, no upward import, modules a newcomer can read.

The import graph is read from the source (every ``import`` statement, including those inside
functions), so a dependency cannot hide from it. The layers, lowest first, are drawn in
CONTRIBUTING.md; a module may import from its own layer or below, never from above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "uegan"

# room (a top-level module or sub-package of uegan) -> layer; lower layers never import higher ones
LAYERS: dict[str, int] = {
    "errors": 0,
    "runtime": 1, "io": 1, "metrics": 1, "progress": 1,
    "models": 2, "nima": 2,
    "losses": 3, "weights": 3, "variants": 3,
    "checkpoints": 4, "model_card": 4, "pretrained": 4,
    "export": 5, "inference": 5, "evaluation": 5,
    "training": 6,
    "apps": 7,
    "cli": 8,
}
# the package's front door and ``python -m uegan`` may import anything
ENTRY_POINTS = {"uegan", "uegan.__main__"}
MAX_LINES = 400
REASON_MARK = "Longer than"  # a module over MAX_LINES says why in its docstring: "Longer than ..."


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The uegan modules ``name`` imports (a ``from package import module`` counts as the module)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(name, path.name == "__init__.py", node)
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("uegan") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        if importer in ENTRY_POINTS:
            continue
        rooms.setdefault(room(importer), set()).update(room(t) for t in targets if room(t) != room(importer))
    return rooms


def test_the_graph_sees_imports_inside_functions_and_relative_imports():
    """The reader of the graph itself: a cycle hidden in a function body is still a cycle."""
    graph = {"uegan.a": {"uegan.b"}, "uegan.b": {"uegan.c"}, "uegan.c": {"uegan.a"}, "uegan.d": set()}
    assert cycles(graph) == [["uegan.a", "uegan.b", "uegan.c"]]
    tree = ast.parse("def f():\n    from .step import x\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert _resolve("uegan.training.trainer", False, node) == "uegan.training.step"
    graph = import_graph()
    assert "uegan.models.generator" in graph["uegan.checkpoints"]


def test_every_room_has_a_layer():
    missing = sorted({room(name) for name in modules() if name not in ENTRY_POINTS} - set(LAYERS))
    assert missing == [], f"add these to LAYERS (and to the diagram in CONTRIBUTING.md): {missing}"


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_packages():
    assert cycles(package_graph(import_graph())) == []


def test_no_upward_import():
    upward = []
    for importer, targets in import_graph().items():
        if importer in ENTRY_POINTS:
            continue
        for target in targets:
            if LAYERS.get(room(target), 0) > LAYERS.get(room(importer), 0):
                upward.append(f"{importer} -> {target}")
    assert upward == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_short_or_says_why(name):
    path = modules()[name]
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert REASON_MARK in docstring, (
        f"{path.relative_to(REPO)} has {lines} lines (> {MAX_LINES}): split it by responsibility, "
        f"or say at its top why not ('{REASON_MARK} ... because ...')")


def _is_class_name(node: ast.AST) -> bool:
    """``type(x).__name__`` or ``x.__class__.__name__`` (or ``__qualname__``)."""
    if not (isinstance(node, ast.Attribute) and node.attr in ("__name__", "__qualname__")):
        return False
    value = node.value
    return ((isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "type")
            or (isinstance(value, ast.Attribute) and value.attr == "__class__"))


def class_name_tests(tree: ast.AST) -> list[int]:
    """Lines that compare a class name (naming a type in a message is fine; branching on it is not)."""
    return sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
                   and any(_is_class_name(part) for part in [node.left, *node.comparators])})


def test_the_class_name_check_tells_a_test_from_a_message():
    tree = ast.parse("a = type(m).__name__ == 'GAM'\nb = f'got {type(m).__name__}'\n"
                     "c = m.__class__.__name__ in ('X', 'Y')\n")
    assert class_name_tests(tree) == [1, 3]


def test_no_class_name_tests():
    """Behaviour is asked of a module (a method, an attribute), never read off its class name."""
    offending = [f"{name}:{line}" for name, path in modules().items()
                 for line in class_name_tests(ast.parse(path.read_text(encoding="utf-8")))]
    assert offending == []
