"""`llmlab bench components`: the Shakespeare recipe once per choice of each part, one part at a time.

Each part of the model (positional encoding, normalization, attention, activation) and the stage's
optimizer is varied alone from `engine.bench.shakespeare.RECIPE` (RoPE, RMSNorm, MHA, ReLU,
AdamW), the others kept; each run is the recipe shortened to `--steps` (evaluated once, at the
end, on the same held-out batches; the recipe's seed), through `engine.worker.run` like `llmlab
run`. The optimizer is switched the way a user switches it (`--set pretrain.optimizer.name=...`),
so its table is reset to that optimizer's defaults at the recipe's lr. Per part: the held-out
loss, the training seconds and the ratio of the loss to the part's best.
"""

from __future__ import annotations

import os
import sys

from engine.bench import common
from engine.project.schema import ACTIVATIONS, ATTENTIONS, NORMALIZATIONS, OPTIMIZERS, POSITIONAL_ENCODINGS

STEPS = 300
TOLERANCE = 0.05  # each choice within 5 % of its part's best
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "positional_encoding": ("model.positional_encoding", POSITIONAL_ENCODINGS),
    "normalization": ("model.normalization", NORMALIZATIONS),
    "attention": ("model.attention", ATTENTIONS),
    "activation": ("model.activation", ACTIVATIONS),
    "optimizer": ("pretrain.optimizer.name", OPTIMIZERS),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "components", help="the Shakespeare recipe once per choice of each part (held-out loss, time)"
    )
    parser.add_argument("path", nargs="?", help="a text file (default: the shipped tiny Shakespeare)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps of each run (default {STEPS})")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=tuple(PARTS),
        default=list(PARTS),
        metavar="PART",
        help=f"the parts to vary (default all: {', '.join(PARTS)})",
    )
    parser.add_argument("--eval-batches", type=int, default=20, help="held-out batches (default 20, the recipe's)")
    common.add_machine_arguments(parser)
    parser.set_defaults(func=main)


def run_parts(data, parts: list[str], steps: int, eval_batches: int, device: str | None, progress=None) -> dict:
    """{part: [{"choice", "val_loss", "seconds", "ratio"}, ...]} for each part, the recipe's choice included."""
    from engine.bench.shakespeare import RECIPE, run_bench

    base = [
        f"pretrain.steps={steps}",
        f"pretrain.eval_every={steps}",
        f"pretrain.eval_batches={eval_batches}",
        f"pretrain.warmup_steps={min(RECIPE['pretrain']['warmup_steps'], max(steps // 10, 1))}",
    ]
    results = {}
    for part in parts:
        key, choices = PARTS[part]
        rows = []
        for choice in choices:
            if progress is not None:
                print(f"{part} = {choice} ...", file=progress, flush=True)
            measured = run_bench(data, [*base, f"{key}={choice}"], device)
            rows.append({"choice": choice, "val_loss": measured["val_loss"], "seconds": measured["train_seconds"]})
        best = min(row["val_loss"] for row in rows)
        for row in rows:
            row["ratio"] = row["val_loss"] / best
        results[part] = rows
    return results


def main(args) -> int:
    from engine.bench.shakespeare import find_data

    device = common.setup(args)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    parts = run_parts(
        find_data(args.path), args.parts, args.steps, args.eval_batches, device.type, None if args.json else sys.stderr
    )
    result = {
        "steps": args.steps,
        "tolerance": TOLERANCE,
        "parts": parts,
        "machine": common.machine(device) | {"load_average_at_start": load_at_start},
    }
    tables = []
    for part, rows in parts.items():
        cells = [
            [
                r["choice"],
                f"{r['val_loss']:.4f}",
                f"{r['seconds']:.1f}",
                f"{r['ratio']:.3f}" + ("" if r["ratio"] <= 1 + TOLERANCE else " *"),
            ]
            for r in rows
        ]
        tables.append(f"{part}\n" + common.table(["choice", "val loss", "seconds", "/ best"], cells))
    outside = [f"{part}.{r['choice']}" for part, rows in parts.items() for r in rows if r["ratio"] > 1 + TOLERANCE]
    text = "\n\n".join(tables) + f"\n\n{args.steps} steps each; load at start {' '.join(map(str, load_at_start))}"
    last = (
        f"every choice within {TOLERANCE:.0%} of its part's best"
        if not outside
        else f"more than {TOLERANCE:.0%} above its part's best (*): {', '.join(outside)}"
    )
    return common.report(args, result, text, last)
