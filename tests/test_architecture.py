"""The packages of ``evento`` depend on each other in one direction: no import cycle, and the layers below.

A *unit* is a direct child of ``evento``: a subpackage (``evento.server``, ``evento.transport``) or a top-level
module (``evento.errors``); ``evento`` itself, the public facade that re-exports the API, is the unit ``evento``.
Every import of every module under ``src/evento`` counts, wherever it is written: at the top, inside a function
(a lazy import is still a dependency, only deferred) and under ``if TYPE_CHECKING:``. Type-only imports count
because the layering is about what a package knows of another: a cycle through annotations is the same design cycle,
and turning an import into a type-only one must not be a way to hide one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import evento

SOURCE = Path(evento.__file__).parent

#: The layers, lowest first. A unit may import units of its own layer and of the layers below it, never above.
#: A new unit must be placed here: the test names any unit it finds that is not.
LAYERS: list[set[str]] = [
    # The vocabulary everything shares, and neutral helpers that know nothing of Evento's runtime.
    {"_version", "errors", "discovery", "payloads", "messages", "storage", "startup"},
    # The performance model: queueing-network analysis of flows, pure computation on discovery data.
    {"performance"},
    # Backends and the interfaces between bundle and server (what each side offers its transport).
    {"event_stores", "consumer_stores", "transport", "outbox"},
    # The server: registry, routing, the bus listener, its HTTP surface.
    {"server"},
    # The bundle runtime and the components users write, which may start a server in their own process.
    {"bundle", "components", "gateways"},
    # The facade: the public API re-exported from the packages above.
    {"evento"},
    # What is built on the runtime, written as users write it (``from evento import Bundle``): test helpers for
    # users, the demo systems.
    {"testing", "demo"},
    # The command line.
    {"cli"},
]


def _module_name(path: Path, source: Path) -> str:
    parts = list(path.relative_to(source.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    """The unit a module ``evento.x.y`` belongs to (``x``), or ``evento`` for the facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name an import statement anywhere in ``tree`` names, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # ``from evento import server`` names the unit ``server``, not only the facade.
            yield from (f"{target}.{alias.name}" for alias in node.names if target == "evento")


def unit_imports(source: Path = SOURCE) -> dict[str, dict[str, str]]:
    """For each unit, the units it imports, each with one module that does (to name in a failure)."""
    units = _units(source)
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(source.rglob("*.py")):
        module = _module_name(path, source)
        unit = _unit(module)
        edges = graph.setdefault(unit, {})
        for target in _imported(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py"):
            if target != "evento" and not target.startswith("evento."):
                continue
            other = _unit(target)
            if target.startswith("evento.") and other not in units:
                other = "evento"  # ``from evento import Bundle``: a name of the facade
            if other != unit:
                edges.setdefault(other, module)
    return graph


def _units(source: Path) -> set[str]:
    return {p.stem for p in source.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in source.iterdir() if (p / "__init__.py").exists()
    }


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of its units (first repeated last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(unit: str) -> list[str] | None:
        state[unit] = 1
        path.append(unit)
        for other in sorted(graph.get(unit, {})):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state and (cycle := visit(other)) is not None:
                return cycle
        path.pop()
        state[unit] = 2
        return None

    for unit in sorted(graph):
        if unit not in state and (cycle := visit(unit)) is not None:
            return cycle
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    return "; ".join(f"{a} -> {b} (in {graph[a][b]})" for a, b in pairwise(cycle))


def test_no_import_cycle_between_packages() -> None:
    graph = unit_imports()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between evento's packages: {_describe(cycle, graph)}"


def test_every_package_imports_only_its_layer_and_below() -> None:
    layer_of = {unit: number for number, layer in enumerate(LAYERS) for unit in layer}
    graph = unit_imports()
    unplaced = sorted(set(graph) - set(layer_of))
    assert not unplaced, f"place {unplaced} in a layer of tests/test_architecture.py LAYERS"
    upward = [
        f"{unit} -> {other} (in {module})"
        for unit, edges in sorted(graph.items())
        for other, module in sorted(edges.items())
        if layer_of[other] > layer_of[unit]
    ]
    assert not upward, "imports from a lower layer to a higher one: " + "; ".join(upward)


def test_the_check_sees_cycles_through_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """The walker itself: an import inside a function or under TYPE_CHECKING closes a cycle it reports."""
    package = tmp_path / "evento"
    for unit, body in {
        "low": "def f() -> None:\n    from evento.high import thing\n",
        "high": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from evento.low.mod import f\nthing = 1\n",
    }.items():
        (package / unit).mkdir(parents=True)
        (package / unit / "__init__.py").write_text(body)
    (package / "low" / "mod.py").write_text("from . import f\n")  # relative, inside its own unit: not an edge
    (package / "__init__.py").write_text("")
    graph = unit_imports(package)
    assert graph == {"evento": {}, "high": {"low": "evento.high"}, "low": {"high": "evento.low"}}
    assert find_cycle(graph) == ["high", "low", "high"]
