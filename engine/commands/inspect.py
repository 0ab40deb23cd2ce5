"""`llmlab inspect MODEL VIEW ...`: look inside a model folder from the shell (engine.inspection).

Views: `tokens` (per-token surprise, top-k), `attention` (a head's heatmap, every head's summary),
`lens` (the logit lens), `ablate` (the held-out loss with heads, MLPs or blocks removed). `--json`
prints the view's plain-data report instead of text.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="look inside a model: tokens, attention, logit lens, ablation")
    parser.add_argument("model_dir", help="a model folder (final/, a checkpoint, merged or adapters)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the report as JSON")
    common.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    with_prompt = argparse.ArgumentParser(add_help=False, parents=[common])
    with_prompt.add_argument("--prompt", required=True, help="the text to read (after EOS, as a new document)")
    views = parser.add_subparsers(dest="view", required=True, metavar="VIEW")

    tokens = views.add_parser("tokens", parents=[with_prompt], help="per-token surprise and top-k alternatives")
    tokens.add_argument("--top-k", type=int, default=5, help="alternatives shown per position")
    tokens.add_argument("--worst", type=int, default=5, help="the most surprising tokens listed")

    attention = views.add_parser("attention", parents=[with_prompt], help="attention heatmap and per-head summary")
    attention.add_argument("--layer", type=int, default=0, help="the layer of the heatmap (from 0)")
    attention.add_argument("--head", type=int, default=0, help="the head of the heatmap (from 0)")
    attention.add_argument("--induction-length", type=int, default=32, help="random tokens repeated to score induction")

    views.add_parser("lens", parents=[with_prompt], help="the logit lens: each layer's next-token guess")

    ablate = views.add_parser("ablate", parents=[common], help="held-out loss with components removed")
    ablate.add_argument(
        "--data", default=None, help="a held-out text file (default: the eval split of the model's run)"
    )
    ablate.add_argument("--batches", type=int, default=4, help="held-out batches to measure on")
    ablate.add_argument("--seq-len", type=int, default=128, help="tokens per row of a --data file")
    ablate.add_argument("--batch-size", type=int, default=8, help="rows per batch of a --data file")
    ablate.add_argument("--mode", default="zero", help="zero, or mean (each component's mean over the data)")
    ablate.add_argument(
        "--ablate",
        dest="components",
        nargs="+",
        default=None,
        metavar="PART",
        help="remove these together (L1.H3, L0.mlp, L2.block) instead of one at a time",
    )
    ablate.add_argument("--save", default=None, metavar="DIR", help="keep the zero-ablated model as a new folder")
    parser.set_defaults(func=run)


OPTIONS = {
    "tokens": ("prompt", "top_k", "worst"),
    "attention": ("prompt", "layer", "head", "induction_length"),
    "lens": ("prompt",),
    "ablate": ("data", "batches", "seq_len", "batch_size", "mode", "components", "save"),
}


def run(args) -> int:
    from transformers.utils import logging

    from engine.inspection.render import TEXT
    from engine.inspection.views import inspect_model

    logging.disable_progress_bar()
    options = {name: getattr(args, name) for name in OPTIONS[args.view]}
    report = inspect_model(args.model_dir, args.view, args.device, **options)
    print(json.dumps(report, ensure_ascii=False) if args.json else TEXT[args.view](report))
    return 0
