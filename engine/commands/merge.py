"""`llmlab merge ADAPTER_DIR [--out DIR] [--overwrite]`: bake LoRA adapters into a full model
directory. DIR must be new or empty; an earlier merge is replaced only with --overwrite, and
nothing else is ever deleted (engine.project.outputs)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("merge", help="bake LoRA adapters into a full model directory")
    parser.add_argument("adapter_dir", help="a LoRA checkpoint (adapter_config.json + adapter weights)")
    parser.add_argument(
        "--out", default=None, help="the model directory to write, new or empty (default: <ADAPTER_DIR>-merged)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier merge at the output folder (never any other folder)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.lora import MERGE_TOLERANCE, merge

    report = merge(args.adapter_dir, args.out, overwrite=args.overwrite)
    print(
        f"merged {args.adapter_dir} -> {report.out_dir} "
        f"(largest logit difference {report.max_logit_diff:.2e}, tolerance {MERGE_TOLERANCE:g})"
    )
    return 0
