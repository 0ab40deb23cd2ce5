"""`llmlab bench <name>`: the benchmarks of `engine.bench`, one module each."""

from __future__ import annotations

import importlib
import pkgutil

from engine import bench


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark (train, generate, shakespeare, components, pipeline, data; the app: `llmlab bench tui`)",
    )
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"engine.bench.{info.name}")
        if hasattr(module, "register"):  # helpers such as engine.bench.common are not benchmarks
            module.register(benches)
