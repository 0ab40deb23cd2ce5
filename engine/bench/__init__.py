"""One module per `llmlab bench` benchmark, discovered by `engine.commands.bench`.

Each module has `register(subparsers)` like the commands. A benchmark prints a small table and a
last line with its headline ratio or number, and takes `--json` for machine-readable output.
(`llmlab bench tui`, the app's start, is the app's own: llmlab_tui/bench.py.)
"""
