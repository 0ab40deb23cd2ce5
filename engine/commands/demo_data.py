"""`llmlab demo-data [--out DIR] [--seed S]`: write the demo's offline data (engine.demo_data)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = Path("projects") / "demo" / "data"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo-data", help="generate the demo project's offline datasets (jsonl)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=1337, help="the same seed writes the same bytes (default: 1337)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine.demo_data import generate_demo_data

    for name, path in generate_demo_data(args.out, args.seed).items():
        rows = sum(1 for _ in path.open(encoding="utf-8"))
        print(f"{name:<20} {rows:>6} rows  {path}")
    return 0
