"""`llmlab export MODEL_DIR --format llama --out DIR`: write a model in a stock architecture's format."""

from __future__ import annotations

FORMATS = ("llama",)  # engine.export.EXPORTERS; listed here so --help needs no torch


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a model directory to a stock format (llama)")
    parser.add_argument("model_dir", help="a model directory (config.json + weights)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the target architecture")
    parser.add_argument("--out", required=True, help="the directory to write")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.export import export

    out = export(args.model_dir, args.out, args.format)
    print(f"wrote {out}")
    return 0
