"""`llmlab export MODEL_DIR --format llama --out DIR [--overwrite]`: write a model in a stock
architecture's format. DIR must be new or empty; an earlier export is replaced only with
--overwrite, and nothing else is ever deleted (engine.project.outputs)."""

from __future__ import annotations

FORMATS = ("llama",)  # engine.export.EXPORTERS; listed here so --help needs no torch


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a model directory to a stock format (llama)")
    parser.add_argument("model_dir", help="a model directory (config.json + weights)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the target architecture")
    parser.add_argument("--out", required=True, help="the directory to write: new or empty (or see --overwrite)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier export of this format at --out (never any other folder)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.export import export

    out = export(args.model_dir, args.out, args.format, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
