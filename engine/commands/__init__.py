"""One module per `llmlab` subcommand; `engine.cli` discovers them (see its docstring)."""
