"""The headless command line: `llmlab <command> ...` and `python -m engine <command> ...`.

Each command lives in its own module under `engine.commands` with a `register(subparsers)`
function that adds its parser and sets `func`. Command modules import torch only inside the
function that runs, so `llmlab validate` and `--help` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from engine import commands
from engine.project.problems import LLMLabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmlab", description="LLM-Lab: build and train your own language model.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"engine.commands.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LLMLabError as error:
        for line in error.lines:
            print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
