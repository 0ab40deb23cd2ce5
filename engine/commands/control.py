"""`llmlab stop RUN` and `llmlab save RUN`: reach a live run from any shell.

`stop` checkpoints, then ends the run (state "stopped", resumable); `save` checkpoints now and
goes on. The request goes through the run folder (engine.project.run_control), so it works
whoever started the run: the app, another shell, torchrun.
"""

from __future__ import annotations

from pathlib import Path

HELP = {"stop": "checkpoint a live run, then end it (resumable)", "save": "checkpoint a live run now"}


def register(subparsers) -> None:
    for command, text in HELP.items():
        parser = subparsers.add_parser(command, help=text)
        parser.add_argument("run", help="a run folder (PROJECT/runs/<stage>-<stamp>)")
        parser.set_defaults(func=run, control=command)


def run(args) -> int:
    from engine.project.run_control import request
    from engine.project.run_lock import holder

    request(args.run, args.control)
    who = holder(args.run) or {}
    done = "will checkpoint, then stop" if args.control == "stop" else "will checkpoint"
    print(f"{Path(args.run).name}: asked pid {who.get('pid', '?')}; it {done} after its current step")
    return 0
