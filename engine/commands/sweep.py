"""`llmlab sweep PROJECT --stage STAGE --grid KEY=V1,V2 ... [--parallel N]`: every combination of the
grid as a run of its own (engine/sweep.py); run again, it skips the finished members and resumes
the stopped or died ones. Ctrl-C stops the member(s) training (with a checkpoint) and the sweep.
At the end, one line per member (its run folder and state); exit status 1 when one failed, died or
diverged.
"""

from __future__ import annotations

import queue
import signal
import sys

from engine.commands import add_overrides
from engine.commands.run import Progress, _stop_on_first_interrupt
from engine.device import DEVICES
from engine.project import STAGES

FAILED = ("failed", "died", "diverged")  # a member in one of these makes the sweep exit with 1


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
    members = sweep.plan()
    for member in members:
        where = f"{member.run_dir.name} {member.state}" if member.run_dir else "not run"
        print(f"sweep {sweep.id}: {' '.join(member.overrides)}: {where}")
    print(f"compare them: llmlab compare --sweep {sweep.folder}")
    return 1 if any(member.state in FAILED for member in members) else 0


class _Lines(Progress):
    """Several members at once: their starts, logs, evals and ends, not their interleaved steps."""

    def put(self, ev: dict) -> None:
        if ev["type"] not in ("metrics", "phase"):
            super().put(ev)
