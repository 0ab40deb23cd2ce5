"""`llmlab`: with no arguments (or a project path) the app; with a subcommand, the engine's CLI.

`llmlab bench tui` (how fast the app starts) is the app's own bench (llmlab_tui/bench.py): the
engine, and so its CLI, never imports the app.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmlab_tui.typeahead import typed_ahead


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (len(argv) == 1 and Path(argv[0]).exists()):
        with typed_ahead():  # before the imports: keys typed meanwhile reach the app as typed
            from llmlab_tui.app import run_app

            return run_app(Path(argv[0]) if argv else None)
    if argv[:2] == ["bench", "tui"]:
        from llmlab_tui.bench import main as bench_tui

        return bench_tui(argv[2:])
    from engine.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
