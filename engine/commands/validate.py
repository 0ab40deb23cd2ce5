"""`llmlab validate PROJECT [--set key=value ...]`: check project.toml, one line per problem.

The problems go to stderr, one "field: rule" line each; what each named field means and allows
(engine/project/descriptions.py, the help the app shows) goes to stdout.
"""

from __future__ import annotations

from engine.commands import add_overrides
from engine.project import LLMLabError, load_project
from engine.project.descriptions import field_help


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="check a project's project.toml (exit 0 when valid, 2 if not)")
    parser.add_argument("project", help="a project directory or its project.toml")
    add_overrides(parser, "pretrain.steps=20")
    parser.set_defaults(func=run)


def run(args) -> int:
    try:
        project = load_project(args.project, args.sets)
    except LLMLabError as error:
        for name in dict.fromkeys(p.field for p in error.problems):
            meaning = field_help(name)
            if meaning:
                print(f"{name} is {meaning}")
        raise
    print(f"ok: {project.file} (project {project.name!r})")
    return 0
