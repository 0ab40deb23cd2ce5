"""`llmlab validate PROJECT [--set key=value ...]`: check project.toml, one line per problem."""

from __future__ import annotations

from engine.commands import add_overrides
from engine.project import load_project


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="check a project's project.toml (exit 0 when valid, 2 if not)")
    parser.add_argument("project", help="a project directory or its project.toml")
    add_overrides(parser, "pretrain.steps=20")
    parser.set_defaults(func=run)


def run(args) -> int:
    project = load_project(args.project, args.sets)
    print(f"ok: {project.file} (project {project.name!r})")
    return 0
