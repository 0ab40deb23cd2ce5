"""`llmlab eval MODEL_DIR --tasks hellaswag,arc_easy,... [--limit N] [--batch-size B] [--device D]
[--include-path DIR] [--log-samples] [--json]`: score a model folder with lm-evaluation-harness
(engine.evaluation), store the scores in MODEL_DIR/eval/results.json and print them as a table.
Progress goes to stderr; the table (or with --json the report) to stdout."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="score a model on lm-evaluation-harness tasks")
    parser.add_argument("model_dir", help="a model folder (final/, a checkpoint, merged or adapters)")
    parser.add_argument(
        "--tasks", required=True, help="comma-separated lm-eval task names (demo_facts, hellaswag, arc_easy, ...)"
    )
    parser.add_argument("--limit", type=int, default=None, help="score only the first N documents of each task")
    parser.add_argument("--batch-size", type=int, default=8, help="requests scored together (default 8)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--include-path",
        action="append",
        default=None,
        metavar="DIR",
        help="a folder of lm-eval task YAML files (repeatable); relative data_files are read from there",
    )
    parser.add_argument(
        "--log-samples", action="store_true", help="also write each document's inputs and scores to eval/samples-*"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.commands.run import Progress
    from engine.evaluation import evaluate
    from engine.project.eval_results import results_table

    report = evaluate(
        args.model_dir,
        args.tasks,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        include_path=args.include_path,
        log_samples=args.log_samples,
        emit=Progress(sys.stderr).put,
    )
    print(
        json.dumps(report, indent=2)
        if args.json
        else "\n".join([*results_table(report["tasks"]), "", f"wrote {report['results']}"])
    )
    return 0
