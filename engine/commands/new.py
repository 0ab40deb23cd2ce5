"""`llmlab new NAME [--template demo|blank] [--dir DIR]`: create a project from a template."""

from __future__ import annotations

from engine.project import TEMPLATES_DIR, new_project


def register(subparsers) -> None:
    templates = sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml"))
    parser = subparsers.add_parser("new", help="create a project from a template (never overwrites)")
    parser.add_argument("name", help="the project's directory name")
    parser.add_argument("--template", default="blank", help=f"one of: {', '.join(templates)} (default: blank)")
    parser.add_argument("--dir", default="projects", help="where the project directory goes (default: ./projects)")
    parser.set_defaults(func=run)


def run(args) -> int:
    root = new_project(args.name, args.template, args.dir)
    print(f"created {root} (template {args.template}); check it with: llmlab validate {root}")
    return 0
