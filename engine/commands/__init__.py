"""One module per `llmlab` subcommand; `engine.cli` discovers them (see its docstring)."""


def add_overrides(parser, example: str) -> None:
    """The `--set KEY=VALUE` option (repeatable) that overrides a project field for this command."""
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a field, e.g. --set {example} (repeatable)",
    )
