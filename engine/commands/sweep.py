"""`llmlab sweep PROJECT --stage STAGE --grid KEY=V1,V2 ... [--parallel N]`: every combination of the
grid as a run of its own (engine/sweep.py); run again, it skips the finished members and resumes
the stopped or died ones. Ctrl-C stops the member(s) training (with a checkpoint) and the sweep.
"""

from __future__ import annotations

import queue
import signal
import sys

from engine.commands import add_overrides
from engine.commands.run import Progress, _stop_on_first_interrupt
from engine.device import DEVICES
from engine.project import STAGES


def register(subparsers) -> None:
    parser = subparsers.add_parser("sweep", help="train a stage once for every combination of a grid")
    parser.add_argument("project", help="project directory or its project.toml")
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a field and its values, e.g. --grid model.positional_encoding=rope,alibi (repeatable)",
    )
    add_overrides(parser, "pretrain.steps=200")
    parser.add_argument("--parallel", type=int, default=1, metavar="N", help="members training at once (default 1)")
    parser.add_argument("--device", choices=DEVICES, help="force a device (default: cuda when present)")
    parser.set_defaults(func=main)


def main(args) -> int:
    from engine.project.sweeps import parse_grid
    from engine.sweep import run_sweep

    grid = parse_grid(args.grid)
    control: queue.SimpleQueue = queue.SimpleQueue()
    previous = signal.signal(signal.SIGINT, _stop_on_first_interrupt(control))
    events = Progress(sys.stdout) if args.parallel == 1 else _Lines(sys.stdout)
    try:
        sweep, _ = run_sweep(args.project, args.stage, grid, args.sets, args.parallel, events, control, args.device)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"sweep {sweep.id}: compare with llmlab compare --sweep {sweep.folder}")
    return 0


class _Lines(Progress):
    """Several members at once: their starts, logs, evals and ends, not their interleaved steps."""

    def put(self, ev: dict) -> None:
        if ev["type"] not in ("metrics", "phase"):
            super().put(ev)
