"""`llmlab export MODEL_DIR --format llama|gguf --out DIR [--dtype f32|f16|bf16] [--overwrite]`: write a
model in a stock format (a Llama directory, or a GGUF file for llama.cpp and Ollama). DIR must be new
or empty; an earlier export is replaced only with --overwrite, and nothing else is ever deleted
(engine.project.outputs)."""

from __future__ import annotations

from engine.project.problems import LLMLabError

FORMATS = ("llama", "gguf")  # engine.export.EXPORTERS; listed here so --help needs no torch
GGUF_DTYPES = ("f32", "f16", "bf16")  # engine.export_gguf.DTYPES


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a model directory to a stock format (llama, gguf)")
    parser.add_argument("model_dir", help="a model directory (config.json + weights)")
    parser.add_argument(
        "--format", required=True, choices=FORMATS, help="llama: a transformers directory; gguf: llama.cpp / Ollama"
    )
    parser.add_argument("--out", required=True, help="the directory to write: new or empty (or see --overwrite)")
    parser.add_argument(
        "--dtype", choices=GGUF_DTYPES, help="gguf only: the type of the weight matrices (default f32; norms stay f32)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier export of this format at --out (never any other folder)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.export import export

    options = {}
    if args.dtype is not None:
        if args.format != "gguf":
            raise LLMLabError(f"--dtype: only --format gguf has a dtype, not --format {args.format}")
        options["dtype"] = args.dtype
    out = export(args.model_dir, args.out, args.format, overwrite=args.overwrite, **options)
    print(f"wrote {out}")
    return 0
