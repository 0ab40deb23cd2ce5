"""The import graph of engine/ and llmlab_tui/, read from the source with `ast` (nothing is imported).

Every `import` and `from ... import` that names an engine or llmlab_tui module counts, at module
level and inside functions alike (a function-level import only hides a dependency), relative
imports resolved against the importing module's package. The graph has no cycle, and the app
reaches the engine only through its torch-free doors (DESIGN.md: two processes, one queue).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "llmlab_tui")

# what llmlab_tui may import from the engine: the project package, the event vocabulary, the worker entry,
# and the text of the inspect reports (json only: F8 draws what the worker sends as `llmlab inspect` does)
APP_MAY_IMPORT = ("engine.project", "engine.events", "engine.worker", "engine.inspection.render")
# llmlab_tui/__main__.py is the console script: no arguments → the app, a subcommand → the engine's CLI
DISPATCHER, DISPATCHER_MAY_IMPORT = "llmlab_tui.__main__", ("engine.cli",)
# the app's start-up bench is a bench, not the app: it shares the benches' torch-free helpers
EXTRA = {DISPATCHER: DISPATCHER_MAY_IMPORT, "llmlab_tui.bench": ("engine.bench.common",)}


def module_files() -> dict[str, Path]:
    """Every module of the two packages by dotted name (a package by its own name, for __init__.py)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The engine / llmlab_tui modules that module `name` (at `path`) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if _is_ours(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not _is_ours(source):
                continue
            for alias in node.names:  # `from engine.project import runs`: the submodule runs
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search, in sorted order)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _inside(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    unknown = sorted(
        f"{name} imports {target}" for name, targets in graph.items() for target in targets if target not in graph
    )
    assert not unknown, "\n".join(unknown)  # every edge resolved to a module of the two packages
    assert {"engine.layers", "engine.positions"} <= graph["engine.model"]  # `from .layers import ...`
    assert "engine.setup" in graph["engine.worker"]  # imported inside `run`, to stay torch-free at import
    assert "engine.project.sizing" in graph["llmlab_tui.summary"]  # `from engine.project import sizing`


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_reports_the_path():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_app_imports_only_the_engines_torch_free_doors():
    wrong = []
    for name, imports in import_graph().items():
        if not name.startswith("llmlab_tui"):
            continue
        allowed = APP_MAY_IMPORT + EXTRA.get(name, ())
        wrong += [
            f"{name} imports {target}"
            for target in sorted(imports)
            if target.startswith("engine") and not _inside(target, allowed)
        ]
    assert not wrong, "\n".join(wrong)


def test_the_engine_never_imports_the_app():
    wrong = [
        f"{name} imports {target}"
        for name, imports in import_graph().items()
        if name.startswith("engine")
        for target in sorted(imports)
        if target.startswith("llmlab_tui")
    ]
    assert not wrong, "\n".join(wrong)
